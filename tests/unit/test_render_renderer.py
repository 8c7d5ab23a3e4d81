"""FaceRenderer: a sphere facing the camera, gradients (float64 gradcheck), dtype/batch behaviour, no mutation."""

import math

import pytest
import torch

from albedogan.render import FaceRenderer, WeakPerspectiveCamera, directional_sh_coeffs, pixel_centers_ndc
from albedogan.render import sh_shading, uv_sphere, weak_perspective_project
from albedogan.structures import RenderOutput

SIZE = 24


def _sphere_scene(dtype=torch.float64, n=1, n_lat=8, n_lon=12, size=SIZE):
    m = uv_sphere(n_lat, n_lon, radius=0.1, dtype=dtype)
    renderer = FaceRenderer(m.faces, m.verts_uvs, m.faces_uvs, size)
    cam = torch.tensor([[7.0, 0.004, -0.003]], dtype=dtype).expand(n, 3).clone()
    return m, renderer, cam


def test_sphere_facing_camera_disc_depth_normals():
    m, r, cam = _sphere_scene(torch.float32, n_lat=24, n_lon=48, size=32)
    cam = torch.tensor([[7.0, 0.0, 0.0]])
    tex = torch.full((1, 3, 8, 8), 0.5)
    out = r.render_world(m.verts[None], WeakPerspectiveCamera(cam), tex)
    assert isinstance(out, RenderOutput)
    c = pixel_centers_ndc(32)
    rad = c.norm(dim=-1)  # projected sphere: disc of radius 0.7 NDC
    alpha = out.alpha[0, 0]
    assert (alpha[rad < 0.65] == 1).all() and (alpha[rad > 0.72] == 0).all()
    assert abs(alpha.sum().item() - math.pi * (0.7 * 16) ** 2) < 0.05 * math.pi * (0.7 * 16) ** 2
    # depth: -s z on the front hemisphere, smallest at the centre and growing outward
    inside = rad < 0.6
    z_expected = -torch.sqrt((0.7**2 - rad**2).clamp(min=0))
    assert (out.depth[0, 0][inside] - z_expected[inside]).abs().max() < 0.02
    # normals (world frame: +Z toward the camera) point to the camera; at the centre almost exactly
    nz = out.normals[0, 2]
    assert (nz[inside] > 0.5).all()
    assert nz[15:17, 15:17].min() > 0.99
    # y down in the image: the upper rows see normals with positive world y
    assert out.normals[0, 1, 6, 16] > 0.5
    torch.testing.assert_close(out.image, 0.5 * out.alpha.expand(1, 3, 32, 32))
    assert torch.equal(out.uv_mask, out.alpha) and out.landmarks is None


def test_shading_and_texture_lookup_are_consistent():
    m, r, cam = _sphere_scene(torch.float64)
    g = torch.Generator().manual_seed(2)
    tex = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    sh = directional_sh_coeffs(torch.tensor([0.2, 0.3, 1.0], dtype=torch.float64))
    out = r.render_world(m.verts[None], WeakPerspectiveCamera(cam), tex, sh)
    n = out.normals.permute(0, 2, 3, 1)
    shade = sh_shading(n, sh).permute(0, 3, 1, 2) * out.alpha
    torch.testing.assert_close(out.shading, shade)
    torch.testing.assert_close(out.image, out.albedo_image * shade)
    # front-centre pixel looks up texture around u = 0.5, v = 0.5
    uv = out.uv[0, :, SIZE // 2, SIZE // 2]
    assert (uv - 0.5).abs().max() < 0.1


def test_background_and_landmarks():
    m, r, cam = _sphere_scene(torch.float32, n=2)
    bg = torch.rand(2, 3, SIZE, SIZE)
    tex = torch.ones(1, 3, 4, 4)
    lmk = torch.tensor([[[0.0, 0.1, 0.05]]]).expand(2, 1, 3)
    out = r.render_world(m.verts[None].expand(2, -1, -1), WeakPerspectiveCamera(cam), tex, landmarks=lmk, background=bg)
    bgmask = out.alpha == 0
    torch.testing.assert_close(out.image[bgmask.expand_as(out.image)], bg[bgmask.expand_as(bg)])
    torch.testing.assert_close(out.landmarks, weak_perspective_project(lmk, cam)[..., :2])


def test_float32_float64_and_batch_agree():
    m, r, cam = _sphere_scene(torch.float64, n=2)
    cam[1] = torch.tensor([6.0, -0.01, 0.02], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    tex = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    sh = torch.randn(2, 9, 3, generator=g, dtype=torch.float64) * 0.2
    sh[:, 0] += 2.0
    verts = m.verts[None].expand(2, -1, -1)
    out64 = r.render_world(verts, WeakPerspectiveCamera(cam), tex, sh)
    out32 = r.render_world(verts.float(), WeakPerspectiveCamera(cam.float()), tex.float(), sh.float())
    assert out32.image.dtype == torch.float32 and out64.image.dtype == torch.float64
    torch.testing.assert_close(out32.image.double(), out64.image, atol=1e-4, rtol=1e-4)
    single = r.render_world(verts[1:], WeakPerspectiveCamera(cam[1:]), tex[1:], sh[1:])
    torch.testing.assert_close(single.image[0], out64.image[1])


def test_inputs_not_modified():
    m, r, cam = _sphere_scene(torch.float32)
    verts = m.verts[None].clone()
    tex, sh = torch.rand(1, 3, 8, 8), torch.randn(1, 9, 3)
    before = [t.clone() for t in (verts, cam, tex, sh)]
    ndc = weak_perspective_project(verts, cam)
    ndc_before = ndc.clone()
    r(ndc, tex, sh, world_vertices=verts)
    r.render_world(verts, WeakPerspectiveCamera(cam), tex, sh)
    for a, b in zip((verts, cam, tex, sh), before):
        assert torch.equal(a, b)
    assert torch.equal(ndc, ndc_before)


def _weights(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_gradcheck_vertices_texture_light_camera():
    m, r, cam = _sphere_scene(torch.float64, n_lat=5, n_lon=7, size=12)
    g = torch.Generator().manual_seed(4)
    verts0 = m.verts[None] + 0.004 * torch.randn(1, *m.verts.shape, generator=g, dtype=torch.float64)
    tex0 = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
    sh0 = torch.randn(1, 9, 3, generator=g, dtype=torch.float64) * 0.3
    wi, wd, wn = _weights((1, 3, 12, 12), 5), _weights((1, 1, 12, 12), 6), _weights((1, 3, 12, 12), 7)

    def fn(verts, tex, sh, cam):
        out = r.render_world(verts, WeakPerspectiveCamera(cam), tex, sh)
        return (out.image * wi).sum() + (out.depth * wd).sum() + (out.normals * wn).sum()

    inputs = tuple(t.clone().requires_grad_(True) for t in (verts0, tex0, sh0, cam))
    # fast mode: checks J^T along random directions per input (a full Jacobian needs ~500 renders)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, fast_mode=True)
    grads = torch.autograd.grad(fn(*inputs), inputs)
    assert all(gr.abs().sum() > 0 for gr in grads)


def test_bad_texture_shape_is_clear():
    m, r, cam = _sphere_scene(torch.float32, n=2)
    with pytest.raises(ValueError, match="texture"):
        r(weak_perspective_project(m.verts[None].expand(2, -1, -1), cam), torch.rand(3, 3, 4, 4))


def test_interior_colour_fills_only_the_inside_seen_through_an_opening():
    """A sphere with its camera-facing cap cut away: through the opening the camera sees the inside of the back
    hemisphere (triangles facing away); ``interior`` colours exactly those pixels, unlit, and nothing else. The
    closed sphere has no inside pixels."""
    from albedogan.render.renderer import inside_pixels

    m, r, _ = _sphere_scene(torch.float32, n_lat=24, n_lon=48, size=32)
    cam = WeakPerspectiveCamera(torch.tensor([[7.0, 0.0, 0.0]]))
    tex = torch.full((1, 3, 8, 8), 0.5)
    light = directional_sh_coeffs(torch.tensor([[0.0, 0.0, 1.0]]), 0.7, 0.3)
    closed = r.render_world(m.verts[None], cam, tex, light, interior=torch.tensor([1.0, 0.0, 0.0]))
    assert not (closed.image[0, 0] > closed.image[0, 1] + 0.1).any()  # no red anywhere
    cap = m.verts[m.faces].mean(1)[:, 2] > 0.06  # triangles nearest the camera (+Z toward it)
    opened = FaceRenderer(m.faces[~cap], m.verts_uvs, m.faces_uvs[~cap], 32)
    plain = opened.render_world(m.verts[None], cam, tex, light)
    red = opened.render_world(m.verts[None], cam, tex, light, interior=torch.tensor([[1.0, 0.0, 0.0]]))
    inside = inside_pixels(cam.transform_points(m.verts[None]), opened.faces, plain.pix_to_face)
    hole = pixel_centers_ndc(32).norm(dim=-1) < 0.45  # well inside the opening (cap radius ~0.56 NDC)
    assert inside[0, 0][hole].all() and inside.sum() < hole.numel() * 0.5
    torch.testing.assert_close(red.image[:, :, inside[0, 0]], torch.tensor([1.0, 0.0, 0.0])[None, :, None].expand(
        1, 3, int(inside.sum())))
    torch.testing.assert_close(red.albedo_image[:, :, inside[0, 0]], red.image[:, :, inside[0, 0]])
    outside = ~inside[0, 0]
    torch.testing.assert_close(red.image[:, :, outside], plain.image[:, :, outside])
