"""NoW protocol on constructed cases with known answers (tiny meshes, mm scans, metre predictions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.eval.now import (
    crop_scan,
    evaluate_now,
    evaluate_scan,
    export_now_prediction,
    face_crop_sphere,
    list_now_samples,
    now_landmarks_from_lmk68,
    read_mesh,
    read_now_landmarks,
    read_pp_landmarks,
    write_now_json,
    write_now_markdown,
)
from albedogan.inference.export import export_obj

# NoW order: R-eye outer, R-eye inner, L-eye inner, L-eye outer, nose bottom, R mouth, L mouth (mm, +z = front)
_LMK_TARGETS = np.array([[-40, 30, 0], [-15, 30, 0], [15, 30, 0], [40, 30, 0], [0, -10, 0], [-25, -40, 0],
                         [25, -40, 0]], dtype=np.float64)


def _head(bumps: float = 0.1, subdiv: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bumpy 100 mm sphere and the indices of 7 vertices placed like NoW's face landmarks."""
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    v = np.asarray(m.vertices)
    v = 100.0 * v * (1 + bumps * np.sin(3 * v[:, :1]) * np.cos(2 * v[:, 1:2]) + bumps * 0.5 * v[:, 2:] ** 2)
    front = v[:, 2] > 0
    idx = []
    for target in _LMK_TARGETS:
        d = np.linalg.norm(v[:, :2] - target[:2], axis=1) + np.where(front, 0, 1e9)
        idx.append(int(np.argmin(d)))
    return v, np.asarray(m.faces), np.asarray(idx)


def _random_similarity(seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q = -q
    return float(rng.uniform(0.5, 2.0)), q, rng.normal(size=3) * 0.3


def test_now_landmarks_from_lmk68_picks_flame_indices() -> None:
    lmk = torch.arange(68 * 3, dtype=torch.float32).reshape(1, 68, 3)
    out = now_landmarks_from_lmk68(lmk)
    assert out.shape == (1, 7, 3)
    assert out[0, :, 0].tolist() == [3.0 * i for i in (36, 39, 42, 45, 33, 48, 54)]


def test_crop_sphere_formula_and_mask() -> None:
    a, b, h = 40.0, 15.0, 40.0
    lmk = torch.tensor([[-a, 0, 0], [-b, 0, 0], [b, 0, 0], [a, 0, 0], [0, -h, 0], [-20, -60, 0], [20, -60, 0]],
                       dtype=torch.float64)
    centre, radius = face_crop_sphere(lmk)
    torch.testing.assert_close(centre, torch.tensor([0.0, -0.7 * h, 0.0], dtype=torch.float64))
    assert float(radius) == pytest.approx(1.4 * (2 * a + h) / 2)
    pts = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80
    inside = np.linalg.norm(pts.numpy() - np.array([0, -0.7 * h, 0]), axis=1) <= 1.4 * (2 * a + h) / 2
    ins, out = np.flatnonzero(inside), np.flatnonzero(~inside)
    faces = torch.tensor([[ins[0], ins[1], ins[2]], [ins[0], ins[1], out[0]]])
    mask, kept, kept_faces = crop_scan(pts, lmk, faces)
    assert mask.numpy().tolist() == inside.tolist() and 0 < inside.sum() < len(inside)
    torch.testing.assert_close(kept, pts[torch.from_numpy(inside)])
    assert kept_faces is not None and kept_faces.tolist() == [[0, 1, 2]]  # re-indexed; the straddling face dropped


@pytest.mark.parametrize("metric", [False, True])
def test_mesh_against_itself_is_zero(metric: bool) -> None:
    v, f, idx = _head()
    ev = evaluate_scan(v, v[idx], v / 1000.0, f, v[idx] / 1000.0, metric=metric, pred_unit="m")
    assert ev.distances.size > 100
    assert float(np.max(ev.distances)) < 1e-6


def test_normal_offset_scan_gives_median_d_metric_and_is_absorbed_by_scale() -> None:
    m = trimesh.creation.icosphere(subdivisions=3, radius=100.0)  # convex: v + d·n has v as closest point
    v, f, n = np.asarray(m.vertices), np.asarray(m.faces), np.asarray(m.vertex_normals)
    _, _, idx = _head()
    d = 0.7
    scan = v + d * n
    # identical landmarks → identity alignment; no refinement: every cropped scan vertex is exactly d away
    ev = evaluate_scan(scan, v[idx], v / 1000.0, f, v[idx] / 1000.0, metric=True, pred_unit="m", max_iters=0)
    assert float(np.median(ev.distances)) == pytest.approx(d, abs=1e-9)
    np.testing.assert_allclose(ev.distances, d, atol=1e-9)
    # the non-metric protocol may rescale the prediction: the uniform offset disappears
    ev_nm = evaluate_scan(scan, v[idx], v / 1000.0, f, v[idx] / 1000.0, metric=False)
    assert float(np.median(ev_nm.distances)) < 0.1 * d


def test_non_metric_invariance_and_metric_sensitivity_to_scale() -> None:
    scan_v, f, idx = _head(bumps=0.1)
    pred_v, _, _ = _head(bumps=0.13)  # a different shape on the same topology
    pred_v = pred_v / 1000.0  # metres
    base = evaluate_scan(scan_v, scan_v[idx], pred_v, f, pred_v[idx])
    assert float(np.median(base.distances)) > 0.05  # a real, non-zero error
    for seed in (1,):
        s, R, t = _random_similarity(seed)
        pv = s * pred_v @ R.T + t
        ev = evaluate_scan(scan_v, scan_v[idx], pv, f, pv[idx])
        np.testing.assert_allclose(ev.distances, base.distances, rtol=1e-4, atol=1e-5)
    # metric: a rigid motion changes nothing, a 10 % scale change does
    _, R, t = _random_similarity(3)
    met = evaluate_scan(scan_v, scan_v[idx], pred_v, f, pred_v[idx], metric=True, max_iters=10)
    moved = evaluate_scan(scan_v, scan_v[idx], pred_v @ R.T + t, f, pred_v[idx] @ R.T + t, metric=True, max_iters=10)
    np.testing.assert_allclose(moved.distances, met.distances, rtol=1e-4, atol=1e-5)
    scaled = evaluate_scan(scan_v, scan_v[idx], 1.2 * pred_v, f, 1.2 * pred_v[idx], metric=True, max_iters=10)
    assert float(np.median(scaled.distances)) > 2 * float(np.median(met.distances))
    non_metric_scaled = evaluate_scan(scan_v, scan_v[idx], 1.2 * pred_v, f, 1.2 * pred_v[idx])
    np.testing.assert_allclose(non_metric_scaled.distances, base.distances, rtol=1e-4, atol=1e-5)


def test_refinement_improves_on_landmark_alignment() -> None:
    scan_v, f, idx = _head(bumps=0.1)
    pred_v = _head(bumps=0.13)[0] / 1000.0
    noisy = pred_v[idx] + np.random.default_rng(0).normal(size=(7, 3)) * 0.003  # 3 mm landmark noise
    lm_only = evaluate_scan(scan_v, scan_v[idx], pred_v, f, noisy, max_iters=0)
    refined = evaluate_scan(scan_v, scan_v[idx], pred_v, f, noisy)
    assert refined.similarity.converged
    assert float(np.mean(refined.distances ** 2)) < float(np.mean(lm_only.distances ** 2))


def _write_pp(path: Path, pts: np.ndarray, header_lines: int = 1) -> None:
    extra = "".join(f'  <User name="x{i}"/>\n' for i in range(header_lines))
    body = "".join(f' <point x="{x:.6f}" y="{y:.6f}" z="{z:.6f}" active="1" name="{i}"/>\n'
                   for i, (x, y, z) in enumerate(pts))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData>\n{extra} </DocumentData>\n{body}"
                    "</PickedPoints>\n")


def test_read_pp_and_bad_landmark_files(tmp_path: Path) -> None:
    pts = np.arange(21, dtype=np.float64).reshape(7, 3) / 3
    _write_pp(tmp_path / "a.pp", pts, header_lines=4)
    np.testing.assert_allclose(read_pp_landmarks(tmp_path / "a.pp"), pts, atol=1e-6)
    _write_pp(tmp_path / "b.pp", pts[:6])
    with pytest.raises(AssetFormatError, match="7"):
        read_pp_landmarks(tmp_path / "b.pp")
    (tmp_path / "c.pp").write_text("<PickedPoints><point x='1'")
    with pytest.raises(AssetFormatError, match="c.pp"):
        read_pp_landmarks(tmp_path / "c.pp")
    np.savetxt(tmp_path / "d.txt", pts)
    np.testing.assert_allclose(read_now_landmarks(tmp_path / "d.txt"), pts)


def test_export_round_trip(tmp_path: Path) -> None:
    v, f, idx = _head(subdiv=1)
    v = v / 1000.0
    written = export_now_prediction(tmp_path / "s" / "selfie" / "IMG_1.obj", torch.from_numpy(v), f, v[idx])
    assert [p.name for p in written] == ["IMG_1.obj", "IMG_1.npy"]
    rv, rf = read_mesh(written[0])
    np.testing.assert_allclose(rv, v, atol=1e-6)
    np.testing.assert_array_equal(rf, f)
    np.testing.assert_allclose(read_now_landmarks(written[1]), v[idx])
    with pytest.raises(ValueError, match="landmarks7"):
        export_now_prediction(tmp_path / "x.obj", v, f, v[:6])


def _now_tree(root: Path) -> tuple[Path, Path]:
    """A tiny NoW dataset (2 subjects, 3 images) and predictions for 2 of the 3 images."""
    data, preds = root / "now", root / "preds"
    v, f, idx = _head(subdiv=2)
    lines = []
    for k, subject in enumerate(("FaMoS_1", "FaMoS_2")):
        scan = v * (1 + 0.05 * k)
        export_obj(data / "scans" / subject / "natural_head_rotation.000001.obj", scan, f)
        _write_pp(data / "scans_lmks_onlypp" / subject / "natural_head_rotation.000001_picked_points.pp",
                  scan[idx], header_lines=2 + k)
        lines.append(f"{subject}/multiview_neutral/IMG_0{k}.jpg")
    lines.append("FaMoS_2/selfie/IMG_9.jpg")
    data.mkdir(parents=True, exist_ok=True)
    (data / "imagepathsvalidation.txt").write_text("\n".join(lines) + "\n")
    for k, subject in enumerate(("FaMoS_1", "FaMoS_2")):
        pv = v * (1 + 0.05 * k) / 1000.0
        export_now_prediction(preds / subject / "multiview_neutral" / f"IMG_0{k}.obj", pv, f, pv[idx])
    return data, preds


def test_folder_reader_and_evaluate_now(tmp_path: Path) -> None:
    data, preds = _now_tree(tmp_path)
    samples = list_now_samples(data, preds, "val")
    assert [s.key for s in samples] == ["FaMoS_1/multiview_neutral/IMG_00", "FaMoS_2/multiview_neutral/IMG_01",
                                        "FaMoS_2/selfie/IMG_9"]
    assert samples[2].pred_mesh_path is None and samples[0].scan_landmarks_path.suffix == ".pp"
    assert len(list_now_samples(data, preds, "val", challenge="selfie")) == 1
    res = evaluate_now(data, preds, split="val", max_iters=5)
    assert res.count == 2 and res.missing == ("FaMoS_2/selfie/IMG_9",)
    assert res.median < 1e-3 and res.unit  # OBJ stores metres to 1 µm == "mm" and res.num_points == sum(s.num_points for s in res.per_scan)
    assert set(res.per_challenge) == {"multiview_neutral"}
    out = json.loads(write_now_json(res, tmp_path / "r.json").read_text())
    assert out["count"] == 2 and out["missing"] == ["FaMoS_2/selfie/IMG_9"] and len(out["per_scan"]) == 2
    md = write_now_markdown(res, tmp_path / "r.md").read_text()
    assert "| all |" in md and "| multiview_neutral |" in md and "1 missing" in md


def test_evaluate_now_errors_name_the_problem(tmp_path: Path) -> None:
    data, preds = _now_tree(tmp_path)
    with pytest.raises(MissingAssetError, match="imagepathstest.txt"):
        evaluate_now(data, preds, split="test")
    with pytest.raises(MissingAssetError, match="none of the 3"):
        evaluate_now(data, tmp_path / "empty", split="val")
    with pytest.raises(ValueError, match="challenge"):
        list_now_samples(data, preds, challenge="profile")
