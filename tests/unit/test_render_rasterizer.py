"""Rasteriser: pixel-centre conventions, exact barycentrics/depth vs pytorch3d's own, normals."""

import pytest
import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes

from albedogan.render import face_normals, interpolate_vertex_attributes, pixel_centers_ndc, rasterize, uv_sphere
from albedogan.render import vertex_normals


def test_triangle_covers_expected_pixels_non_square():
    # H=4, W=6. Triangle with corners at the top-left corner, hypotenuse x + y = -0.8: covers the upper-left pixels
    v = torch.tensor([[[-1.0, -1.0, 0.5], [0.2, -1.0, 0.5], [-1.0, 0.2, 0.5]]])
    frag = rasterize(v, torch.tensor([[0, 1, 2]]), (4, 6))
    centers = pixel_centers_ndc((4, 6))
    expected = (centers.sum(-1) < -0.8).long() - 1  # 0 inside, -1 outside
    assert torch.equal(frag.pix_to_face[0, ..., 0], expected)
    assert frag.pix_to_face[0, 0, 2, 0] == 0 and frag.pix_to_face[0, 1, 1, 0] == -1
    # barycentrics of pixel (row 0, col 0) centre (-5/6, -3/4): w1 = (x + 1) / 1.2, w2 = (y + 1) / 1.2
    w1, w2 = (1 / 6) / 1.2, (1 / 4) / 1.2
    torch.testing.assert_close(frag.bary_coords[0, 0, 0, 0], torch.tensor([1 - w1 - w2, w1, w2]))
    torch.testing.assert_close(frag.zbuf[0, 0, 0, 0], torch.tensor(0.5))
    assert frag.zbuf[0, 3, 5, 0] == -1


def test_negative_depth_and_nearest_face_wins():
    # two overlapping triangles at negative depths (weak-perspective depth may be negative): nearer one (-2) wins
    tri = torch.tensor([[-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9]])
    v = torch.cat([torch.cat([tri, torch.full((3, 1), -1.0)], 1), torch.cat([tri, torch.full((3, 1), -2.0)], 1)])[None]
    v_before = v.clone()
    frag = rasterize(v, torch.tensor([[0, 1, 2], [3, 4, 5]]), 8, faces_per_pixel=2)
    assert torch.equal(v, v_before)
    m = frag.pix_to_face[..., 0] >= 0
    assert (frag.pix_to_face[..., 0][m] == 1).all() and (frag.pix_to_face[..., 1][m] == 0).all()
    assert torch.allclose(frag.zbuf[..., 0][m], torch.tensor(-2.0))


@pytest.mark.parametrize("perspective", [False, True])
def test_bary_and_depth_match_pytorch3d(perspective):
    m = uv_sphere(8, 12, radius=0.8)
    g = torch.Generator().manual_seed(1)
    verts = m.verts[None].repeat(2, 1, 1) + 0.03 * torch.randn(2, *m.verts.shape, generator=g)
    verts = verts * torch.tensor([1.0, -1.0, -1.0])  # to image NDC (y down, depth away)
    verts = verts + torch.tensor([0.0, 0.0, 3.0])  # positive depth so both conventions apply
    if perspective:
        verts = torch.cat([verts[..., :2] * 2.0 / verts[..., 2:], verts[..., 2:]], -1)
    frag = rasterize(verts, m.faces, (20, 16), perspective_correct=perspective, blur_radius=0.0)
    # pytorch3d reference in its own NDC (+X left, +Y up, shorter side [-1, 1]); W < H so x scales by 1, y by 20/16
    p3 = verts * torch.tensor([-1.0, -20 / 16, 1.0])
    p2f, zbuf, bary, _ = rasterize_meshes(
        Meshes(verts=p3, faces=m.faces[None].expand(2, -1, -1)),
        image_size=(20, 16),
        faces_per_pixel=1,
        perspective_correct=perspective,
    )
    p2f = torch.where(p2f >= 0, p2f - (torch.arange(2) * m.faces.shape[0]).view(2, 1, 1, 1), p2f)
    assert torch.equal(frag.pix_to_face, p2f)
    mask = p2f >= 0
    assert mask.float().mean() > 0.15
    torch.testing.assert_close(frag.bary_coords[mask], bary[mask], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(frag.zbuf[mask], zbuf[mask], atol=2e-5, rtol=1e-4)


def test_no_cracks_when_pixel_centres_lie_on_a_shared_edge():
    # a square split along its diagonal x + y = 0, which passes exactly through pixel centres of an even image
    v = torch.tensor([[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.5, 0.5, 1.0], [-0.5, 0.5, 1.0]]])
    f = torch.tensor([[0, 1, 3], [1, 2, 3]])
    centers = pixel_centers_ndc(8)
    inside = (centers.abs() < 0.5).all(-1)
    frag = rasterize(v, f, 8)
    assert torch.equal(frag.pix_to_face[0, ..., 0] >= 0, inside)
    assert (rasterize(v, f, 8, blur_radius=0.0, backend="pytorch3d").pix_to_face[0, ..., 0] >= 0).sum() < inside.sum()  # pytorch3d alone
    bary = frag.bary_coords[0, ..., 0, :][inside]
    assert bary.min() > -1e-6 and bary.max() < 1 + 1e-6


def test_float64_bary_are_exact_and_differentiable():
    # no pixel centre lies on an edge, so coverage is stable under the finite-difference steps
    v = torch.tensor([[[-0.93, -0.91, 0.2], [0.87, -0.95, 0.4], [-0.9, 0.83, 0.6]]], dtype=torch.float64)
    v.requires_grad_(True)
    f = torch.tensor([[0, 1, 2]])

    def depth_sum(verts):
        fr = rasterize(verts, f, 6)
        return (fr.zbuf * (fr.pix_to_face >= 0)).sum() + (fr.bary_coords[..., 1] * 0.3).sum()

    assert rasterize(v, f, 6).bary_coords.dtype == torch.float64
    assert torch.autograd.gradcheck(depth_sum, (v,))


def test_interpolate_vertex_attributes_reproduces_linear_field():
    m = uv_sphere(6, 10, radius=0.7)
    verts = (m.verts * torch.tensor([1.0, -1.0, -1.0]))[None]
    frag = rasterize(verts, m.faces, 12)
    # an attribute that is linear in screen position is interpolated exactly: a x + b y + c
    attr = (verts[..., :2] @ torch.tensor([[0.5], [-2.0]])) + 0.25
    out = interpolate_vertex_attributes(frag, m.faces, attr)[:, 0]
    centers = pixel_centers_ndc(12)
    ref = centers[..., 0] * 0.5 - 2.0 * centers[..., 1] + 0.25
    mask = frag.pix_to_face[..., 0] >= 0
    torch.testing.assert_close(out[mask], ref[None].expand_as(out)[mask], atol=1e-5, rtol=1e-5)
    assert (out[~mask] == 0).all()


def test_normals_area_weighted_and_outward():
    # vertex 0 shared by a big face in the xy plane (normal +z) and a small face in the xz plane (normal -y)
    v = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 3, 1]])
    fn = face_normals(v, f)
    torch.testing.assert_close(fn[0], torch.tensor([[0.0, 0, 1], [0, 1, 0]], dtype=torch.float64))
    vn = vertex_normals(v, f)
    expected0 = torch.nn.functional.normalize(torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64), dim=0)  # 2*areas
    torch.testing.assert_close(vn[0, 0], expected0)
    sphere = uv_sphere(6, 10)
    vn = vertex_normals(sphere.verts[None], sphere.faces)[0]
    assert ((vn * sphere.verts).sum(-1) > 0.95).all()


def _dense_nearest(verts, faces, h, w, perspective=False):
    """Brute-force reference: every pixel centre against every face, float64, exact inside test, nearest depth."""
    v = verts.double()
    p = pixel_centers_ndc((h, w), dtype=torch.float64).reshape(-1, 2)  # (P, 2)
    tri = v[:, faces]  # (N, F, 3, 3)
    a, b, c = tri[..., 0, :2], tri[..., 1, :2], tri[..., 2, :2]  # (N, F, 2)

    def cross(u, w_):
        return u[..., 0] * w_[..., 1] - u[..., 1] * w_[..., 0]

    area = cross(b - a, c - a)[:, None]  # (N, 1, F)
    pp = p[None, :, None, :]
    w0 = cross(b[:, None] - pp, c[:, None] - pp) / area
    w1 = cross(c[:, None] - pp, a[:, None] - pp) / area
    w2 = 1 - w0 - w1
    z = tri[..., 2]
    if perspective:
        z = -1.0 / z
    depth = w0 * z[:, None, :, 0] + w1 * z[:, None, :, 1] + w2 * z[:, None, :, 2]  # (N, P, F)
    inside = (w0 >= -1e-7) & (w1 >= -1e-7) & (w2 >= -1e-7) & (area.abs() > 1e-18)
    depth = torch.where(inside, depth, torch.full_like(depth, float("inf")))
    best, idx = depth.min(-1)
    return torch.where(torch.isfinite(best), idx, torch.full_like(idx, -1)).reshape(-1, h, w), depth


@pytest.mark.parametrize("perspective", [False, True])
def test_bbox_kernel_matches_dense_reference(perspective):
    from albedogan.render.rasterizer import _nearest_faces_bbox

    g = torch.Generator().manual_seed(0)
    verts = torch.rand(2, 60, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1  # some faces cross the borders
    verts[..., 2] = verts[..., 2].abs() + 0.5  # positive depth for the perspective variant
    faces = torch.randint(0, 60, (80, 3), generator=g)
    for h, w in ((17, 23), (16, 16)):
        ref, depth = _dense_nearest(verts, faces, h, w, perspective)  # depth: (N, H*W, F)
        for max_pairs in (1 << 23, 64):  # one chunk, and many chunks
            got = _nearest_faces_bbox(verts, faces, h, w, perspective, slack=1e-7, max_pairs=max_pairs)[..., 0]
            assert torch.equal(got >= 0, ref >= 0)
            # where the choice differs it must be an exact depth tie (broken by the smallest face index)
            g_flat, r_flat = got.reshape(2, -1), ref.reshape(2, -1)
            covered = r_flat >= 0
            d_got = depth.gather(2, g_flat.clamp(min=0)[..., None])[..., 0][covered]
            d_ref = depth.gather(2, r_flat.clamp(min=0)[..., None])[..., 0][covered]
            assert torch.allclose(d_got, d_ref, rtol=0, atol=1e-12)
            assert (g_flat[covered] <= r_flat[covered]).all()


def test_bbox_kernel_agrees_with_pytorch3d_on_a_sphere():
    from albedogan.render import uv_sphere, weak_perspective_project

    mesh = uv_sphere(12, 24, radius=0.1)
    verts = weak_perspective_project(mesh.verts[None].double(), torch.tensor([[7.0, 0.01, -0.02]], dtype=torch.float64))
    a = rasterize(verts, mesh.faces, 40, backend="bbox").pix_to_face
    b = rasterize(verts, mesh.faces, 40, backend="pytorch3d").pix_to_face
    assert torch.equal(a >= 0, b >= 0)
    assert (a == b).float().mean() > 0.98  # remaining differences: centres on shared edges (either face is right)
    with pytest.raises(ValueError, match="faces_per_pixel=1"):
        rasterize(verts, mesh.faces, 8, faces_per_pixel=2, backend="bbox")
