"""What depends only on topology and UV layout is computed once per run, and each batch is rasterised once.

* the UV-space rasterisation is shared by every :class:`UVSpace` / :class:`UVMirror` of one layout and resolution
  (the target builder's, its mirror's and the training module's), and its per-call gathers are precomputed buffers
  that give exactly the per-call formula;
* :class:`FaceRenderer` rasterises a batch once for colour, mask, normals, depth, UVs and landmarks.
"""

from __future__ import annotations

import torch

import albedogan.render.renderer as renderer_module
import albedogan.render.uv as uv_module
from albedogan.render import FaceRenderer, UVMirror, UVSpace, uv_sphere, weak_perspective_project


def _layout(seed: int = 0):
    m = uv_sphere(12, 16)
    return m, m.faces, m.verts_uvs, m.faces_uvs


def test_uv_rasterisation_is_shared_per_layout_and_resolution(monkeypatch):
    m, faces, verts_uvs, faces_uvs = _layout()
    calls = []
    real = uv_module.rasterize
    monkeypatch.setattr(uv_module, "rasterize", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    uv_module._LAYOUT_CACHE.clear()
    a = UVSpace(faces, verts_uvs, faces_uvs, 40)
    b = UVSpace(faces, verts_uvs.clone(), faces_uvs.clone(), 40)  # same content, other tensors: same entry
    c = UVSpace(faces, verts_uvs, faces_uvs, 24)
    assert calls == [(40, 40), (24, 24)]
    assert a.texel_face.data_ptr() == b.texel_face.data_ptr() and torch.equal(a.texel_bary, b.texel_bary)
    assert c.texel_face.shape == (24, 24)
    moved = verts_uvs.clone()
    moved[0, 0] = 1.0 - moved[0, 0]  # another layout is another entry
    UVSpace(faces, moved, faces_uvs, 40)
    assert len(calls) == 3
    mirror = torch.rand(faces.shape[0], 3, 2, generator=torch.Generator().manual_seed(0))
    m1 = UVMirror(faces, verts_uvs, faces_uvs, mirror, 40)
    m2 = UVMirror(faces, verts_uvs, faces_uvs, mirror.clone(), 40)
    assert len(calls) == 3  # the mirror reuses the layout's rasterisation, and is itself built once
    assert m1.grid.data_ptr() == m2.grid.data_ptr()


def test_precomputed_gathers_equal_the_per_call_formula():
    m, faces, verts_uvs, faces_uvs = _layout()
    space = UVSpace(faces, verts_uvs, faces_uvs, 32)
    attrs = torch.randn(2, m.verts.shape[0], 5, dtype=torch.float64)
    vidx = space.faces[space.texel_face.clamp(min=0).reshape(-1)]
    bary = (space.texel_bary * space.coverage[0, 0, ..., None]).reshape(1, -1, 3, 1).to(attrs.dtype)
    ref = (attrs[:, vidx] * bary).sum(2).reshape(2, 32, 32, 5).permute(0, 3, 1, 2)
    assert torch.equal(space.attribute_map(attrs), ref)
    corners = torch.randn(faces.shape[0], 3, 2)
    vals = corners[space.texel_face.clamp(min=0).reshape(-1)]
    ref_c = (vals * (space.texel_bary * space.coverage[0, 0, ..., None]).reshape(-1, 3, 1)).sum(1).T.reshape(-1, 32, 32)
    assert torch.equal(space.corner_map(corners), ref_c)


def test_renderer_rasterises_each_batch_once(monkeypatch):
    m, faces, verts_uvs, faces_uvs = _layout()
    renderer = FaceRenderer(faces, verts_uvs, faces_uvs, 32)
    calls = []
    real = renderer_module.Rasterizer.forward
    monkeypatch.setattr(renderer_module.Rasterizer, "forward", lambda self, *a: calls.append(1) or real(self, *a))
    verts = weak_perspective_project(m.verts[None].double().expand(2, -1, -1), torch.tensor([[0.8, 0, 0]] * 2).double())
    lmk = verts[:, :5]
    out = renderer(verts, torch.rand(2, 3, 16, 16, dtype=torch.float64), torch.randn(2, 9, 3, dtype=torch.float64),
                   landmarks=lmk)
    assert calls == [1]
    for field in (out.image, out.alpha, out.normals, out.depth, out.uv, out.shading, out.albedo_image):
        assert field.shape[-2:] == (32, 32)
    assert out.landmarks.shape == (2, 5, 2) and out.alpha.sum() > 50
