"""Exporters: round trips through trimesh / pytorch3d, correct colours (no red/blue swap), atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from albedogan.inference.export import export_glb, export_npz, export_obj, merge_uv_seams, save_png
from albedogan.utils.io import OutputWriteError


def _quad():
    # two triangles forming a unit square; UV seam: vertex 0 appears with two UVs
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    verts_uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9], [0.05, 0.05]], dtype=np.float64)
    faces_uvs = np.array([[0, 1, 2], [4, 2, 3]])
    # texture: top half (v > 0.5) pure red, bottom half pure blue; row 0 is the top
    tex = torch.zeros(3, 8, 8)
    tex[0, :4] = 1.0
    tex[2, 4:] = 1.0
    return vertices, faces, verts_uvs, faces_uvs, tex


def test_obj_roundtrip_keeps_red_red(tmp_path):
    v, f, vt, ft, tex = _quad()
    files = export_obj(tmp_path / "face.obj", v, f, vt, ft, tex)
    assert [p.name for p in files] == ["face.obj", "face_albedo.png", "face.mtl"]
    png = np.asarray(Image.open(tmp_path / "face_albedo.png").convert("RGB"))
    assert tuple(png[0, 0]) == (255, 0, 0) and tuple(png[-1, 0]) == (0, 0, 255)

    mesh = trimesh.load(tmp_path / "face.obj", process=False, force="mesh")
    assert mesh.vertices.shape == (4, 3) or mesh.vertices.shape[0] >= 4
    # trimesh samples the texture at each vertex's UV: vertex with v=0.9 → red, v=0.1 → blue
    colors = mesh.visual.to_color().vertex_colors[:, :3].astype(int)
    uv = mesh.visual.uv
    top = colors[uv[:, 1] > 0.5]
    bottom = colors[uv[:, 1] < 0.5]
    assert (top[:, 0] > 200).all() and (top[:, 2] < 50).all()
    assert (bottom[:, 2] > 200).all() and (bottom[:, 0] < 50).all()


def test_obj_roundtrip_pytorch3d(tmp_path):
    from pytorch3d.io import load_obj

    v, f, vt, ft, tex = _quad()
    export_obj(tmp_path / "m.obj", v, f, vt, ft, tex)
    verts, faces, aux = load_obj(tmp_path / "m.obj", load_textures=True)
    np.testing.assert_allclose(verts.numpy(), v, atol=1e-6)
    np.testing.assert_array_equal(faces.verts_idx.numpy(), f)
    np.testing.assert_array_equal(faces.textures_idx.numpy(), ft)
    np.testing.assert_allclose(aux.verts_uvs.numpy(), vt, atol=1e-6)
    image = next(iter(aux.texture_images.values()))  # (H, W, 3) float
    assert image[0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_glb_roundtrip_colours_and_seams(tmp_path):
    v, f, vt, ft, tex = _quad()
    export_glb(tmp_path / "m.glb", v, f, vt, ft, tex)
    scene = trimesh.load(tmp_path / "m.glb", process=False)
    mesh = next(iter(scene.geometry.values())) if isinstance(scene, trimesh.Scene) else scene
    assert len(mesh.vertices) == 5  # vertex 0 split along the UV seam
    assert len(mesh.faces) == 2
    img = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    assert tuple(img[0, 0]) == (255, 0, 0)
    colors = mesh.visual.to_color().vertex_colors[:, :3].astype(int)
    top = colors[mesh.visual.uv[:, 1] > 0.5]
    assert (top[:, 0] > 200).all() and (top[:, 2] < 50).all()
    # geometry preserved: each face's corner positions are the original ones
    np.testing.assert_allclose(np.sort(mesh.vertices[mesh.faces].reshape(-1, 3), axis=0),
                               np.sort(v[f].reshape(-1, 3), axis=0))


def test_merge_uv_seams_is_consistent():
    v, f, vt, ft, _ = _quad()
    verts, uvs, faces = merge_uv_seams(v, f, vt, ft)
    np.testing.assert_allclose(verts[faces], v[f])
    np.testing.assert_allclose(uvs[faces], vt[ft])


def test_bad_mesh_inputs_raise(tmp_path):
    v, f, vt, ft, tex = _quad()
    with pytest.raises(ValueError, match="faces index"):
        export_obj(tmp_path / "x.obj", v, f + 10)
    with pytest.raises(ValueError, match="given together"):
        export_obj(tmp_path / "x.obj", v, f, vt, None)
    with pytest.raises(ValueError, match="needs verts_uvs"):
        export_obj(tmp_path / "x.obj", v, f, texture=tex)
    assert not list(tmp_path.iterdir())


def test_npz_and_png(tmp_path):
    export_npz(tmp_path / "p.npz", {"seed": 3, "z": torch.ones(2, 4), "note": "x"})
    data = np.load(tmp_path / "p.npz")
    assert int(data["seed"]) == 3 and data["z"].shape == (2, 4) and str(data["note"]) == "x"
    save_png(tmp_path / "i.png", torch.rand(3, 5, 6))
    assert Image.open(tmp_path / "i.png").size == (6, 5)


def test_unwritable_output_gives_clear_error(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(OutputWriteError, match="not_a_folder"):
        save_png(blocker / "i.png", torch.rand(3, 4, 4))
