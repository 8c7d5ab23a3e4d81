"""Latent editing: interpolation, directions from labels, files, and consistent albedo + shape edits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.inference.editing import (apply_direction, direction_from_labels, lerp, load_direction,
                                         save_direction, slerp)
from albedogan.inference.generate import run_generate
from tests.helpers.inference_world import tiny_pipeline, write_tiny_checkpoint


def test_lerp_and_slerp_end_points_and_norms():
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    t = torch.tensor([0.0, 0.5, 1.0])
    out = lerp(a, b, t)
    assert out.shape == (3, 4, 8)
    assert torch.allclose(out[0], a) and torch.allclose(out[2], b) and torch.allclose(out[1], (a + b) / 2)
    za, zb = torch.randn(16), torch.randn(16)
    s = slerp(za, zb, t)
    assert torch.allclose(s[0], za, atol=1e-5) and torch.allclose(s[2], zb, atol=1e-5)
    # the midpoint keeps a Gaussian-like norm (lerp would shrink it) and lies in the plane of za, zb
    assert s[1].norm() == pytest.approx(0.5 * (za.norm() + zb.norm()).item(), rel=1e-4)
    basis = torch.linalg.qr(torch.stack([za, zb], 1))[0]
    assert torch.allclose(basis @ (basis.T @ s[1]), s[1], atol=1e-4)


def test_direction_from_labels_recovers_a_planted_direction():
    gen = torch.Generator().manual_seed(0)
    true = torch.nn.functional.normalize(torch.randn(12, generator=gen), dim=0)
    ws = torch.randn(200, 12, generator=gen)
    score = ws @ true
    labels = (score > 0).float()
    for method in ("mean_difference", "least_squares"):
        d = direction_from_labels(ws, labels if method == "mean_difference" else score, method=method)
        assert d.shape == (12,) and d.norm().item() == pytest.approx(1.0, abs=1e-5)
        assert torch.dot(d, true) > 0.9, method
    w_plus = ws[:, None].expand(200, 3, 12)
    assert direction_from_labels(w_plus, labels).shape == (3, 12)
    with pytest.raises(ValueError, match="both positive and negative"):
        direction_from_labels(ws, torch.ones(200))
    with pytest.raises(ValueError, match="unknown method"):
        direction_from_labels(ws, labels, method="svm")


def test_apply_direction_strength_zero_is_identity():
    ws = torch.randn(2, 3, 4)
    d = torch.randn(4)
    assert torch.equal(apply_direction(ws, d, 0.0), ws)
    assert torch.allclose(apply_direction(ws, d, 2.0) - ws, 2 * d.expand(2, 3, 4))
    with pytest.raises(ValueError, match="direction must be"):
        apply_direction(ws, torch.randn(5), 1.0)


def test_direction_files(tmp_path):
    path = save_direction(tmp_path / "d.npy", torch.ones(8, 16))
    assert load_direction(path, 16, 8).shape == (8, 16)
    with pytest.raises(AssetFormatError, match=r"\(16,\) or \(4, 16\)"):
        load_direction(path, 16, 4)
    with pytest.raises(MissingAssetError, match="edit.direction"):
        load_direction(tmp_path / "none.npy", 16, 8)
    np.save(tmp_path / "i.npy", np.ones(16, dtype=np.int64))
    with pytest.raises(AssetFormatError, match="float"):
        load_direction(tmp_path / "i.npy", 16, 8)


def test_edit_changes_albedo_and_shape_consistently(synthetic_head_model, tmp_path):
    pipe = tiny_pipeline(synthetic_head_model, write_tiny_checkpoint(tmp_path / "g.safetensors"))
    direction = save_direction(tmp_path / "d.npy", torch.nn.functional.normalize(torch.randn(16), dim=0))
    outs = {}
    for strength in (0.0, 3.0):
        outs[strength] = run_generate(pipe, tmp_path / f"s{strength}", seeds=[1], glb=False, sheet_cell=32,
                                      edit={"direction": str(direction), "strength": strength})
    plain = run_generate(pipe, tmp_path / "plain", seeds=[1], glb=False, sheet_cell=32)
    p0, p3, pp = (np.load(o / "seed0001" / "params.npz") for o in (outs[0.0], outs[3.0], plain))
    for k in ("w", "shape", "expression", "camera"):
        np.testing.assert_array_equal(p0[k], pp[k])  # strength 0 = no edit
    # the edit moves w by exactly strength · direction, and both the shape and the albedo follow
    np.testing.assert_allclose(p3["w"] - p0["w"], 3.0 * np.load(direction)[None].repeat(8, 0), atol=1e-5)
    assert np.abs(p3["shape"] - p0["shape"]).max() > 1e-3
    a0 = np.asarray(Image.open(outs[0.0] / "seed0001" / "mesh_albedo.png"), dtype=float)
    a3 = np.asarray(Image.open(outs[3.0] / "seed0001" / "mesh_albedo.png"), dtype=float)
    assert np.abs(a3 - a0).mean() > 0.5


def test_edit_direction_from_labelled_seeds(synthetic_head_model, tmp_path):
    import json

    from albedogan.inference.generate import edit_direction

    pipe = tiny_pipeline(synthetic_head_model, write_tiny_checkpoint(tmp_path / "g.safetensors"))
    labels = {3: 1, 14: 1, 15: 0, 92: 0}
    expected = direction_from_labels(pipe.mapping(pipe.latents(list(labels))).cpu(), torch.tensor([1.0, 1, 0, 0]))
    d, strength = edit_direction(pipe, {"labels": labels, "strength": 2.0, "save": str(tmp_path / "d.npy")})
    assert strength == 2.0 and torch.allclose(d, expected)
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), expected.numpy(), atol=1e-6)
    (tmp_path / "labels.json").write_text(json.dumps({str(k): v for k, v in labels.items()}))
    d_file, _ = edit_direction(pipe, {"labels": str(tmp_path / "labels.json"), "strength": 1.0})
    assert torch.allclose(d_file, expected)
    out = run_generate(pipe, tmp_path / "edited", seeds=[1], glb=False, sheet_cell=32,
                       edit={"labels": labels, "strength": 2.0})
    plain = run_generate(pipe, tmp_path / "plain", seeds=[1], glb=False, sheet_cell=32)
    w_edit, w_plain = (np.load(o / "seed0001" / "params.npz")["w"] for o in (out, plain))
    np.testing.assert_allclose(w_edit - w_plain, 2.0 * expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="either edit.direction"):
        edit_direction(pipe, {"labels": labels, "direction": "x.npy"})
    with pytest.raises(ValueError, match="JSON"):
        edit_direction(pipe, {"labels": str(tmp_path / "missing.json")})
