"""Tests of the embedded synthetic FLAME-format head (albedogan.assets.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import albedogan.assets.synthetic.head as head_mod
from albedogan.assets.flame_assets import load_flame_assets
from albedogan.assets.synthetic.writers import flame_model_to_pickle_bytes
from albedogan.assets.synthetic import (
    SYNTHETIC_HEAD_VERSION,
    build_synthetic_head,
    ensure_synthetic_head,
    synthetic_asset_paths,
)
from albedogan.flame.flame import FLAME
from albedogan.structures import FlameParams

MIRROR = np.array([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def head():
    return build_synthetic_head()


@pytest.fixture(scope="module")
def flame(head):
    return FLAME(head.model, head.landmarks, n_shape=300, n_exp=100).double()


def _params(flame_layer, **kw):
    p = FlameParams.zeros(1, 300, 100, dtype=torch.float64)
    fields = {k: getattr(p, k) for k in ("shape", "expression", "global_pose", "neck_pose", "jaw_pose", "eye_pose")}
    fields.update({k: torch.as_tensor(v, dtype=torch.float64)[None] for k, v in kw.items()})
    return flame_layer(FlameParams(**fields))


def test_sizes_and_formats(head):
    m = head.model
    assert 4500 <= m.n_vertices <= 5500 and 9000 <= len(m.faces) <= 11000
    assert m.shapedirs.shape == (m.n_vertices, 3, 400) and m.posedirs.shape == (m.n_vertices, 3, 36)
    assert m.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(m.lbs_weights.sum(1), 1.0, atol=1e-12)
    assert m.lbs_weights.min() >= 0.0
    np.testing.assert_allclose(m.J_regressor.sum(1), 1.0, atol=1e-12)
    # every vertex is used by some face; faces are non-degenerate
    assert np.unique(m.faces).size == m.n_vertices
    v = m.v_template
    area = np.linalg.norm(np.cross(v[m.faces[:, 1]] - v[m.faces[:, 0]], v[m.faces[:, 2]] - v[m.faces[:, 0]]), axis=1)
    assert area.min() > 1e-10
    # a head, not a sphere: about 15 cm wide, 25 cm from neck cut to crown, nose in front
    ext = v.max(0) - v.min(0)
    assert 0.14 < ext[0] < 0.19 and 0.22 < ext[1] < 0.3 and 0.19 < ext[2] < 0.26


def test_determinism_same_bytes(head):
    again = build_synthetic_head()
    assert flame_model_to_pickle_bytes(head.model) == flame_model_to_pickle_bytes(again.model)
    np.testing.assert_array_equal(head.landmarks.dynamic_lmk_faces_idx, again.landmarks.dynamic_lmk_faces_idx)
    np.testing.assert_array_equal(head.uv.verts_uvs, again.uv.verts_uvs)
    np.testing.assert_array_equal(head.face_mask, again.face_mask)


def test_template_and_topology_mirror_symmetric(head):
    v, sym = head.model.v_template, head.symmetry
    assert np.array_equal(sym[sym], np.arange(len(v)))
    np.testing.assert_array_equal(v[sym], v * MIRROR)
    # mirrored faces are faces (with reversed winding)
    faces = {tuple(sorted(f)) for f in head.model.faces.tolist()}
    mirrored = {tuple(sorted(f)) for f in sym[head.model.faces].tolist()}
    assert faces == mirrored


def test_basis_mirror_consistent(head):
    d, sym, parity = head.model.shapedirs, head.symmetry, head.blendshape_parity
    mirrored = d[sym] * MIRROR[None, :, None]  # (V, 3, K)
    for k in np.nonzero(parity != 0)[0]:
        np.testing.assert_allclose(mirrored[..., k], parity[k] * d[..., k], atol=1e-15)
    assert (parity[:20] == 1).all() and (parity == -1).sum() >= 2  # semantic columns first; mouth left/right odd
    sym_part = 0.5 * (d + mirrored)
    ratio = np.linalg.norm(sym_part, axis=(0, 1)) / np.linalg.norm(d, axis=(0, 1))
    assert (ratio[parity == 0] > 0.9).all()  # random fields are symmetric-ish


def test_basis_std_ordering_and_norms(head):
    d, stds = head.model.shapedirs, head.shape_stds
    np.testing.assert_allclose(np.linalg.norm(d, axis=(0, 1)), stds, rtol=1e-12)
    assert np.all(np.diff(stds[:300]) <= 0) and np.all(np.diff(stds[300:]) <= 0)
    assert stds[-1] > 0
    assert {"head_width", "nose_length", "jaw_width", "eye_spacing", "lip_thickness", "chin_length"} <= set(
        head.identity_names
    )
    assert {"mouth_open", "smile", "brow_raise", "frown", "pucker", "eyes_close", "cheek_puff"} <= set(
        head.expression_names
    )
    # 1-sigma identity changes stay plausible (mm to cm), eyeballs move rigidly, expressions leave eyes alone
    peak = np.abs(d[:, :, :300]).max(axis=(0, 1))
    assert peak.max() < 0.02 and peak[0] > 0.002
    for k in (1, 2):
        eye = head.eye_id == k
        assert np.ptp(d[eye][:, :, :300], axis=0).max() < 1e-15
        assert np.abs(d[eye][:, :, 300:]).max() == 0.0
    # mouth slit copies move together in identity space
    np.testing.assert_array_equal(d[head.slit_upper, :, :300], d[head.slit_lower, :, :300])


def test_uv_layout_is_deliberately_not_mirror_symmetric(head):
    """As FLAME's (DECA's head_template.obj), the layout is not symmetric about u = 0.5: a width flip of a UV map
    is not its mirror image, while the template's mirror pairs give the partners exactly."""
    from albedogan.assets.synthetic.mesh import RIGHT_EYE_UV_CENTER, U_SHIFT, unwarp_u, warp_u
    from albedogan.flame.symmetry import mirror_face_uvs, mirror_vertex_pairs

    uv, fuv, f, sym = head.uv.verts_uvs.astype(np.float64), head.uv.faces_uvs, head.model.faces, head.symmetry
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    s = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(unwarp_u(warp_u(s)), s, atol=1e-12)
    # the face (nose tip) is off u = 0.5, so the width flip misses partners by 2 U_SHIFT there
    tip = int(np.argmax(np.where(head.eye_id == 0, head.model.v_template[:, 2], -1)))
    tip_uv = uv[fuv[f == tip]]
    np.testing.assert_allclose(tip_uv[:, 0], 0.5 - U_SHIFT, atol=1e-6)
    # the mirror pairs found from the template geometry are the generator's symmetry map
    pairs, err = mirror_vertex_pairs(head.model.v_template, head.model.faces)
    np.testing.assert_array_equal(pairs, sym)
    assert err < 1e-12
    corner_uvs, found = mirror_face_uvs(f, fuv, head.uv.verts_uvs, pairs)
    assert found.all()  # the topology is symmetric: every face has a mirror face
    # partner UVs: skin partners at s' = 1 - s in grid coordinates (not u' = 1 - u), same v
    skin = head.eye_id[f] == 0  # (F, 3)
    own_s = unwarp_u(uv[fuv][..., 0])
    partner_s = unwarp_u(corner_uvs[..., 0])
    total = (own_s + partner_s)[skin]
    assert np.all((np.abs(total - 1.0) < 1e-5) | (np.abs(total - 2.0) < 1e-5) | (np.abs(total) < 1e-5))  # seam
    np.testing.assert_allclose(corner_uvs[..., 1][skin], uv[fuv][..., 1][skin], atol=1e-6)
    flip_miss = np.abs(1.0 - uv[fuv][..., 0] - corner_uvs[..., 0])[skin]
    assert flip_miss.max() > 1.9 * U_SHIFT
    # the right eye's island is not the mirror image of the left one's (centres and orientation differ)
    right = head.eye_id[f] == 2
    assert np.linalg.norm(uv[fuv][right].reshape(-1, 2).mean(0) - RIGHT_EYE_UV_CENTER) < 0.02
    assert np.abs((1.0 - uv[fuv][right][..., 0]) - corner_uvs[right][..., 0]).max() > 0.03


def test_zero_params_give_template(head, flame):
    out = _params(flame)
    np.testing.assert_allclose(out.vertices[0].numpy(), head.model.v_template, rtol=0, atol=1e-8)


def test_jaw_opens_mouth_only_with_jaw_vertices(head, flame):
    rest = head.model.v_template
    posed = _params(flame, jaw_pose=[0.3, 0.0, 0.0]).vertices[0].numpy()
    moved = np.linalg.norm(posed - rest, axis=1)
    lower_drop = rest[head.slit_lower, 1] - posed[head.slit_lower, 1]
    assert lower_drop.max() > 0.01  # the lower lip comes down by > 1 cm
    np.testing.assert_allclose(posed[head.slit_upper], rest[head.slit_upper], atol=1e-12)  # upper lip stays
    jaw_w = head.model.lbs_weights[:, 2]
    corrective = np.abs(head.model.posedirs[:, :, 9:18]).max(axis=(1, 2)) > 0
    assert moved[(jaw_w == 0) & ~corrective].max() < 1e-7  # FLAME's Rodrigues epsilon: < 0.1 micrometre
    assert np.median(moved[jaw_w > 0.9]) > 0.005


def test_eye_rotation_moves_only_eyeballs(head, flame):
    rest = head.model.v_template
    posed = _params(flame, eye_pose=[0.0, 0.4, 0.0, 0.0, 0.0, 0.0]).vertices[0].numpy()
    moved = np.linalg.norm(posed - rest, axis=1) > 1e-7
    assert moved[head.eye_id == 1].mean() > 0.9
    assert not moved[head.eye_id != 1].any()
    # rigid: distances to the eye centre are preserved, the pupil turns toward +X
    c = flame.J_regressor.numpy()[3] @ rest
    eye = head.eye_id == 1
    # (the FLAME layer keeps float32-rounded buffers, hence 1e-8 m)
    np.testing.assert_allclose(np.linalg.norm(posed[eye] - c, axis=1), np.linalg.norm(rest[eye] - c, axis=1), atol=1e-8)
    pupil = np.nonzero(eye)[0][np.argmax(rest[eye, 2])]
    assert posed[pupil, 0] > rest[pupil, 0] + 0.003


def test_landmarks_sane(head, flame):
    out = _params(flame)
    lmk = out.landmarks3d[0].numpy()  # (68, 3) fixed embedding
    assert int(np.argmax(lmk[:, 2])) == 30  # nose tip is the most forward landmark
    eyes = head.model.J_regressor[3:5] @ head.model.v_template  # (2, 3) left (+X), right
    for idx, eye in ((range(36, 42), eyes[1]), (range(42, 48), eyes[0])):
        assert np.linalg.norm(lmk[list(idx)] - eye, axis=1).max() < 0.022
    # contour row 0 is mirror symmetric; negative-yaw rows mirror positive ones
    faces, bary, v = head.landmarks.dynamic_lmk_faces_idx, head.landmarks.dynamic_lmk_bary_coords, head.model.v_template
    pts = np.einsum("rkc,rkcd->rkd", bary, v[head.model.faces[faces]])  # (79, 17, 3)
    np.testing.assert_allclose(pts[0, ::-1] * MIRROR, pts[0], atol=1e-12)
    np.testing.assert_allclose(pts[40 + 9, ::-1] * MIRROR, pts[10], atol=1e-12)  # yaw -10 vs +10
    # contour on the jaw line: below the eyes, chin point lowest, and yaw moves the far side toward the face
    assert (pts[:, :, 1] < 0.03).all() and pts[0, 8, 1] < pts[0, :, 1].min() + 0.004
    assert pts[30, 16, 0] < pts[0, 16, 0] - 0.005
    # landmarks2d at zero pose use contour row 0 = the fixed set
    np.testing.assert_allclose(out.landmarks2d[0].numpy(), lmk, atol=1e-12)


def test_masks_coverage(head):
    fm, fem = head.face_mask, head.face_eye_mask
    assert fm.shape == fem.shape == (256, 256)
    assert 0.12 < fm.mean() < 0.5 and fem.mean() > fm.mean()
    assert (fem >= fm).all()
    # the face region is mirror symmetric on the head: each texel's partner column (through the asymmetric layout,
    # u -> warp(1 - unwarp(u))) carries the same mask value, while the plain width flip does not
    from albedogan.assets.synthetic.mesh import unwarp_u, warp_u

    u = (np.arange(256) + 0.5) / 256
    partner = np.clip(np.round(warp_u(1.0 - unwarp_u(u)) * 256 - 0.5).astype(int), 0, 255)
    assert (fm != fm[:, partner]).mean() < 0.01 < 0.03 < (fm != fm[:, ::-1]).mean()  # 0.003 (rounding) vs 0.04
    assert fm[:, 128].any() and not fm[:, :20].any()  # centred face, back of the head outside


def test_ensure_writes_official_files_and_caches(head, tmp_path, monkeypatch):
    calls = []

    def fake_build():
        calls.append(1)
        return head

    monkeypatch.setattr(head_mod, "build_synthetic_head", fake_build)
    paths = ensure_synthetic_head(tmp_path)
    assert paths == synthetic_asset_paths(tmp_path) and len(calls) == 1
    assets = load_flame_assets(paths)  # the official loaders read every file
    np.testing.assert_array_equal(assets.model.shapedirs, head.model.shapedirs)
    np.testing.assert_array_equal(assets.model.faces, head.model.faces)
    np.testing.assert_array_equal(assets.landmarks.static_lmk_faces_idx, head.landmarks.static_lmk_faces_idx)
    np.testing.assert_allclose(assets.uv.verts_uvs, head.uv.verts_uvs, atol=1e-7)
    np.testing.assert_array_equal(assets.face_mask, head.face_mask)
    stamp = paths.model.stat().st_mtime_ns
    ensure_synthetic_head(tmp_path)
    assert len(calls) == 1 and paths.model.stat().st_mtime_ns == stamp  # cached
    monkeypatch.setattr(head_mod, "SYNTHETIC_HEAD_VERSION", SYNTHETIC_HEAD_VERSION + 1)
    ensure_synthetic_head(tmp_path)
    assert len(calls) == 2  # regenerated for the new version
    assert (paths.model.parent / "VERSION").read_text().strip() == str(SYNTHETIC_HEAD_VERSION + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_flame"]  # no temp folders left


def test_ensure_crash_leaves_no_partial_set(head, tmp_path, monkeypatch):
    def broken_write(folder, h):
        (folder / "generic_model.pkl").write_bytes(b"partial")
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(head_mod, "build_synthetic_head", lambda: head)
    monkeypatch.setattr(head_mod, "_write_all", broken_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ensure_synthetic_head(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_contour_follows_ibug_convention(head):
    """The frontal contour (row 0) runs from just below the eye line, in front of the ears, to the chin, its 17
    points equally spaced along the outline (dlib's points on frontal photos are: ratio of segments 0.9-1.1)."""
    from albedogan.assets.synthetic.landmarks import _EAR_CENTRE, _EAR_RADII, CONTOUR_TOP_Y

    faces, bary, v = head.landmarks.dynamic_lmk_faces_idx, head.landmarks.dynamic_lmk_bary_coords, head.model.v_template
    pts = np.einsum("rkc,rkcd->rkd", bary, v[head.model.faces[faces]])  # (79, 17, 3)
    seg = np.linalg.norm(np.diff(pts[0, :, :2], axis=0), axis=1)
    assert seg.max() / seg.min() < 1.35, seg
    assert abs(pts[0, 0, 1] - CONTOUR_TOP_Y) < 0.003 and abs(pts[0, 16, 1] - CONTOUR_TOP_Y) < 0.003
    ends = pts[0, [0, 16]] * [[-1, 1, 1], [1, 1, 1]]  # both ends on the +X side
    assert (np.linalg.norm((ends - _EAR_CENTRE) / _EAR_RADII, axis=1) > 1.0).all()  # in front of the ears
    assert (ends[:, 2] > _EAR_CENTRE[2] + _EAR_RADII[2] / 1.4).all()
    for row in (10, 30, 39):  # a turned head: still ordered image-left to image-right, evenly spread
        x = pts[row, :, 0] * np.cos(np.deg2rad(row)) + pts[row, :, 2] * np.sin(np.deg2rad(row))
        seg = np.hypot(np.diff(x), np.diff(pts[row, :, 1]))
        assert seg.max() / seg.min() < 1.6, (row, seg)
