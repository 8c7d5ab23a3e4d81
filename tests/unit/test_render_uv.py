"""UV space: texture sampling, attribute maps, unwrap with visibility, mirror completion."""

import math

import torch

from albedogan.flame.symmetry import mirror_face_uvs, mirror_vertex_pairs
from albedogan.render import FaceRenderer, UVMirror, UVSpace, mirror_complete, sample_texture
from albedogan.render import uv_grid, uv_sphere, weak_perspective_project


_FLIP = lambda t: t.flip(-1)  # noqa: E731  the mirror of the toy layouts below, which ARE symmetric about u = 0.5


def _sphere_mirror_uvs(m):
    pairs, _ = mirror_vertex_pairs(m.verts.double().numpy(), m.faces.numpy())
    return torch.from_numpy(mirror_face_uvs(m.faces.numpy(), m.faces_uvs.numpy(), m.verts_uvs.numpy(), pairs)[0])


def _texel_center_uvs(hu, wu, dtype=torch.float32):
    i = (torch.arange(hu, dtype=dtype) + 0.5) / hu
    j = (torch.arange(wu, dtype=dtype) + 0.5) / wu
    v, u = torch.meshgrid(1 - i, j, indexing="ij")  # row 0 = v near 1
    return torch.stack([u, v])[None]  # (1, 2, Hu, Wu)


def _smooth_symmetric_texture(hu, wu, dtype=torch.float64):
    uv = _texel_center_uvs(hu, wu, dtype)
    du, v = (uv[:, 0] - 0.5).abs(), uv[:, 1]
    return torch.stack([0.5 + 0.4 * torch.cos(3 * du), 0.3 + 0.5 * v, 0.2 + 0.6 * du * v], dim=1)  # (1, 3, Hu, Wu)


def test_sample_texture_at_texel_centres_is_identity():
    tex = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    uv = _texel_center_uvs(5, 7, torch.float64).expand(2, -1, -1, -1)
    torch.testing.assert_close(sample_texture(tex, uv), tex)
    mask = (torch.rand(2, 1, 5, 7) > 0.5).double()
    torch.testing.assert_close(sample_texture(tex, uv, mask), tex * mask)


def test_attribute_map_on_grid_is_exact():
    m = uv_grid(3)
    uvs = UVSpace(m.faces, m.verts_uvs, m.faces_uvs, (6, 8))
    assert uvs.coverage.sum() == 48  # the grid's UVs cover the whole square
    pos = uvs.attribute_map(m.verts[None].double())  # positions are (uv - 0.5) * 2
    expected = (_texel_center_uvs(6, 8, torch.float64) - 0.5) * 2
    torch.testing.assert_close(pos[:, :2], expected)
    assert pos.dtype == torch.float64


def _front_sphere(n=1, yaw_deg=0.0, size=48, dtype=torch.float64):
    m = uv_sphere(16, 32, radius=0.1, dtype=dtype)
    a = math.radians(yaw_deg)
    rot = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=dtype)
    verts = (m.verts @ rot.T)[None].expand(n, -1, -1)
    cam = torch.tensor([[8.0, 0.0, 0.0]], dtype=dtype).expand(n, 3)
    return m, verts, cam


def test_unwrap_then_render_reproduces_visible_pixels():
    m, verts, cam = _front_sphere()
    tex = _smooth_symmetric_texture(32, 64) * torch.tensor([1.0, 0.8, 1.2], dtype=torch.float64).view(1, 3, 1, 1)
    r = FaceRenderer(m.faces, m.verts_uvs, m.faces_uvs, 48)
    ndc = weak_perspective_project(verts, cam)
    img = r(ndc, tex).image
    uvs = UVSpace(m.faces, m.verts_uvs, m.faces_uvs, (32, 64))
    img0, ndc0 = img.clone(), ndc.clone()
    unwrapped, vis = uvs.unwrap(img, ndc)
    assert torch.equal(img, img0) and torch.equal(ndc, ndc0)
    assert unwrapped.shape == (1, 3, 32, 64) and vis.shape == (1, 1, 32, 64)
    again = r(ndc, unwrapped)
    # compare on pixels well inside the disc, whose texel neighbourhood was visible
    vis_px = sample_texture(vis, again.uv, again.alpha, mode="nearest")
    ys, xs = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    rad = torch.hypot((xs + 0.5) / 24 - 1, (ys + 0.5) / 24 - 1)
    sel = (rad < 0.6) & (vis_px[0, 0] > 0)
    assert sel.sum() > 400
    err = (again.image - img).abs()[0].amax(0)[sel]
    assert err.mean() < 0.01 and err.max() < 0.06
    # the unwrapped texture matches the source texture on visible texels away from the silhouette
    front = (vis[0, 0] > 0) & (uvs.attribute_map(ndc)[0, 2] < -0.6)  # near the sphere's front
    assert front.sum() > 50
    assert (unwrapped - tex).abs()[0].amax(0)[front].max() < 0.05


def test_back_faces_not_visible_front_visible():
    m, verts, cam = _front_sphere(n=2, size=32)
    ndc = weak_perspective_project(verts, cam)
    uvs = UVSpace(m.faces, m.verts_uvs, m.faces_uvs, (16, 32))
    _, vis = uvs.unwrap(torch.rand(2, 3, 32, 32, dtype=torch.float64), ndc)
    u = _texel_center_uvs(16, 32)[0, 0]
    back = (u < 0.2) | (u > 0.8)  # azimuth beyond +-108 degrees: back hemisphere
    assert (vis[:, 0][:, back] == 0).all()
    centre = vis[:, 0, 6:10, 14:18]  # u ~ 0.5, v ~ 0.5: facing the camera
    assert (centre == 1).all()
    # soft facing: a ramp in [0, 1] that is never larger than the hard visibility
    _, soft = uvs.unwrap(torch.rand(2, 3, 32, 32, dtype=torch.float64), ndc, soft_facing=0.5)
    assert (soft <= vis).all() and ((soft > 0) & (soft < 1)).any()


def test_occluded_texels_of_stacked_quads_are_not_visible():
    # quad A (front, world z = 0.5) uses UVs u in [0, 0.5]; quad B (behind, z = 0, wider) uses u in [0.5, 1]
    verts = torch.tensor(
        [[-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, 0.5],
         [-0.5, 0.5, 0.0], [-0.5, -0.5, 0.0], [0.9, -0.5, 0.0], [0.9, 0.5, 0.0]],
        dtype=torch.float64,
    )  # fmt: skip
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    verts_uvs = torch.tensor(
        [[0.0, 1.0], [0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.5, 1.0], [0.5, 0.0], [1.0, 0.0], [1.0, 1.0]],
        dtype=torch.float64,
    )
    uvs = UVSpace(faces, verts_uvs, faces, (8, 16))
    ndc = weak_perspective_project(verts[None], torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    _, vis = uvs.unwrap(torch.rand(1, 3, 40, 40, dtype=torch.float64), ndc)
    u = _texel_center_uvs(8, 16)[0, 0, 0]  # (16,) u of each texel column
    x_b = -0.5 + (u - 0.5) / 0.5 * 1.4  # world x of quad B's texels
    assert (vis[0, 0][:, u < 0.5] == 1).all()  # front quad fully visible
    assert (vis[0, 0][:, (u > 0.5) & (x_b < 0.45)] == 0).all()  # behind quad A
    assert (vis[0, 0][:, (u > 0.5) & (x_b > 0.55)] == 1).all()  # sticking out to the right


def test_mirror_complete_exact_on_half_visible_map():
    tex = _smooth_symmetric_texture(8, 16)
    vis = torch.zeros(1, 1, 8, 16, dtype=torch.float64)
    vis[..., :8] = 1.0
    seen = tex * vis
    done, cov = mirror_complete(seen, vis, _FLIP)
    torch.testing.assert_close(done, tex)
    assert (cov == 1).all()
    # soft blend formula at a texel seen with weight 0.25 whose mirror has weight 1
    w = vis.clone()
    w[..., 0, 10] = 0.25
    other = torch.rand(1, 3, 8, 16, dtype=torch.float64)
    done2, cov2 = mirror_complete(other, vis, _FLIP, weights=w)
    expected = (0.25 * other[..., 0, 10] + 0.75 * other[..., 0, 5]) / 1.0
    torch.testing.assert_close(done2[..., 0, 10], expected)
    # nothing seen on either side: empty and zero coverage
    d3, c3 = mirror_complete(other, torch.zeros_like(vis), _FLIP)
    assert (d3 == 0).all() and (c3 == 0).all()


def test_mirror_completion_restores_symmetric_texture_on_turned_sphere():
    m, verts, cam = _front_sphere(yaw_deg=60.0)
    tex = _smooth_symmetric_texture(32, 64)
    r = FaceRenderer(m.faces, m.verts_uvs, m.faces_uvs, 64)
    ndc = weak_perspective_project(verts, cam)
    uvs = UVSpace(m.faces, m.verts_uvs, m.faces_uvs, (32, 64))
    unwrapped, vis = uvs.unwrap(r(ndc, tex).image, ndc, soft_facing=0.3)
    mirror = UVMirror(m.faces, m.verts_uvs, m.faces_uvs, _sphere_mirror_uvs(m), (32, 64)).double()
    done, cov = mirror_complete(unwrapped, vis, mirror)
    assert (cov >= vis).all()
    seen_area, done_area = (vis > 0.99).sum(), (cov > 0.99).sum()
    assert done_area > 1.5 * seen_area  # one side was turned away and is now filled
    good = (cov > 0.99)[0, 0]
    assert (done - tex).abs()[0].amax(0)[good].mean() < 0.02
