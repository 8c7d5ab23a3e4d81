"""FLAME layer: LBS against a slow per-vertex reference, locality of jaw/eye skinning, gradients, dtypes, landmarks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from albedogan.assets.synthetic.writers import write_flame_model, write_landmark_embedding
from albedogan.flame import FLAME, batch_rodrigues, contour_rows, contour_yaw_degrees
from albedogan.structures import FlameParams
from tests.helpers.flame_tiny import JAW, LEFT_EYE, N_EXP, N_SHAPE, tiny_flame_model, tiny_landmark_embedding


@pytest.fixture(scope="module")
def model():
    return tiny_flame_model()


@pytest.fixture(scope="module")
def emb(model):
    return tiny_landmark_embedding(model.faces.shape[0])


@pytest.fixture()
def flame(model, emb):
    return FLAME(model, emb, n_shape=N_SHAPE, n_exp=N_EXP, shape_dims_in_file=N_SHAPE, dtype=torch.float64)


def random_params(n: int, seed: int = 0, scale: float = 0.3, dtype=torch.float64) -> FlameParams:
    g = torch.Generator().manual_seed(seed)
    r = lambda k: (torch.rand(n, k, generator=g, dtype=torch.float64) * 2 - 1) * scale  # noqa: E731
    return FlameParams(r(N_SHAPE) * 3, r(N_EXP) * 3, r(3), r(3), r(3), r(6)).to(dtype=dtype)


# --------------------------------------------------------------------------- slow, independent reference


def ref_rodrigues(r: np.ndarray) -> np.ndarray:
    theta = math.sqrt(float(r @ r))
    if theta == 0.0:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def ref_flame(model, coeffs: np.ndarray, pose: np.ndarray):
    """Textbook FLAME for one sample: loops over vertices and joints."""
    n_verts, n_joints = model.n_vertices, model.n_joints
    v_shaped = model.v_template + np.tensordot(model.shapedirs, coeffs, axes=([2], [0]))
    joints = model.J_regressor @ v_shaped
    rots = [ref_rodrigues(pose[3 * j : 3 * j + 3]) for j in range(n_joints)]
    feat = np.concatenate([(rots[j] - np.eye(3)).ravel() for j in range(1, n_joints)])
    world = []
    for j in range(n_joints):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        p = model.parents[j]
        local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        world.append(local if p < 0 else world[p] @ local)
    skin = []
    for j in range(n_joints):
        unrest = np.eye(4)
        unrest[:3, 3] = -joints[j]
        skin.append(world[j] @ unrest)
    out = np.zeros((n_verts, 3))
    for v in range(n_verts):
        pv = v_shaped[v] + model.posedirs[v] @ feat
        acc = np.zeros(4)
        for j in range(n_joints):
            acc += model.lbs_weights[v, j] * (skin[j] @ np.append(pv, 1.0))
        out[v] = acc[:3]
    return out, np.stack([w[:3, 3] for w in world])


def ref_bary(vertices: np.ndarray, faces: np.ndarray, face_idx: np.ndarray, bary: np.ndarray) -> np.ndarray:
    return np.stack([sum(b[k] * vertices[faces[f, k]] for k in range(3)) for f, b in zip(face_idx, bary)])


# --------------------------------------------------------------------------- tests


def test_lbs_matches_slow_reference(flame, model):
    params = random_params(2, seed=3)
    out = flame(params)
    coeffs = torch.cat([params.shape, params.expression], 1).numpy()
    for n in range(2):
        verts, joints = ref_flame(model, coeffs[n], params.full_pose[n].numpy())
        np.testing.assert_allclose(out.vertices[n].numpy(), verts, rtol=0, atol=1e-12)
        np.testing.assert_allclose(out.joints[n].numpy(), joints, rtol=0, atol=1e-12)
    assert not torch.allclose(out.vertices[0], flame.v_template)  # the test pose really deforms the mesh


def test_rodrigues_matches_references_and_has_gradients_at_zero():
    """Closed-form batch_rodrigues = the textbook formula and pytorch3d's quaternion path, from 1e-9 rad to 3 rad,
    in float64 and float32; its gradient is finite and equals pytorch3d's, also at exactly zero rotation."""
    from pytorch3d.transforms import axis_angle_to_matrix

    g = torch.Generator().manual_seed(0)
    v = torch.randn(400, 3, generator=g, dtype=torch.float64)
    v = torch.cat([v / v.norm(dim=-1, keepdim=True) * torch.logspace(-9, math.log10(3.0), 400, dtype=torch.float64)[:, None],
                   torch.zeros(1, 3, dtype=torch.float64)])
    ours = batch_rodrigues(v)
    ref = torch.from_numpy(np.stack([ref_rodrigues(r) for r in v.numpy()]))
    assert (ours - ref).abs().max() < 1e-12
    assert (batch_rodrigues(v.float()).double() - ref).abs().max() < 2e-6
    assert (axis_angle_to_matrix(v.float()).double() - ref).abs().max() < 2e-6  # the same float32 accuracy
    weights = torch.arange(9.0, dtype=torch.float64).view(3, 3)
    leaf = v.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((batch_rodrigues(leaf) * weights).sum(), leaf)
    (grad_p3d,) = torch.autograd.grad((axis_angle_to_matrix(leaf) * weights).sum(), leaf)
    assert torch.isfinite(grad).all() and (grad - grad_p3d).abs().max() < 1e-9
    assert batch_rodrigues(torch.zeros(2, 5, 3)).shape == (2, 5, 3, 3)


def test_zero_params_give_template_exactly(model, emb):
    for dtype in (torch.float32, torch.float64):
        layer = FLAME(model, emb, N_SHAPE, N_EXP, N_SHAPE).to(dtype)
        out = layer(FlameParams.zeros(3, N_SHAPE, N_EXP, dtype=dtype))
        assert torch.equal(out.vertices, layer.v_template.expand(3, -1, -1))
        assert torch.equal(out.joints, (layer.J_regressor @ layer.v_template).expand(3, -1, -1))


def test_jaw_rotation_moves_only_jaw_weighted_vertices(flame, model):
    zero = FlameParams.zeros(1, N_SHAPE, N_EXP, dtype=torch.float64)
    jaw = FlameParams(zero.shape, zero.expression, zero.global_pose, zero.neck_pose,
                      torch.tensor([[0.25, 0.0, 0.0]], dtype=torch.float64), zero.eye_pose)
    moved = (flame(jaw).vertices[0] - flame.v_template).norm(dim=-1) > 0
    expected = torch.from_numpy(model.lbs_weights[:, JAW] > 0)
    assert expected.any() and not expected.all()
    assert torch.equal(moved, expected)


def test_eye_rotation_moves_only_eye_weighted_vertices(flame, model):
    zero = FlameParams.zeros(1, N_SHAPE, N_EXP, dtype=torch.float64)
    eyes = torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # left eye only
    params = FlameParams(zero.shape, zero.expression, zero.global_pose, zero.neck_pose, zero.jaw_pose, eyes)
    out = flame(params)
    moved = (out.vertices[0] - flame.v_template).norm(dim=-1) > 0
    expected = torch.from_numpy(model.lbs_weights[:, LEFT_EYE] > 0)
    assert 0 < int(expected.sum()) < 10
    assert torch.equal(moved, expected)
    # an eye rotates about its own joint: the joint itself does not move
    torch.testing.assert_close(out.joints[0, LEFT_EYE], flame.J_regressor[LEFT_EYE] @ flame.v_template, rtol=0, atol=1e-15)


@pytest.mark.parametrize("at_zero", [False, True])
def test_gradients_reach_every_parameter(flame, at_zero):
    base = FlameParams.zeros(2, N_SHAPE, N_EXP, dtype=torch.float64) if at_zero else random_params(2, seed=5)
    leaves = {name: getattr(base, name).clone().requires_grad_(True) for name in
              ("shape", "expression", "global_pose", "neck_pose", "jaw_pose", "eye_pose")}
    out = flame(FlameParams(**leaves))
    g = torch.Generator().manual_seed(0)
    loss = (out.vertices * torch.randn(out.vertices.shape, generator=g, dtype=torch.float64)).sum()
    loss = loss + out.landmarks2d.square().sum() + out.landmarks7.sum()
    loss.backward()
    for name, leaf in leaves.items():
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), name
        assert leaf.grad.abs().sum() > 0, name


def test_float32_and_float64_agree(model, emb):
    params = random_params(2, seed=7)
    layer64 = FLAME(model, emb, N_SHAPE, N_EXP, N_SHAPE, dtype=torch.float64)
    layer32 = FLAME(model, emb, N_SHAPE, N_EXP, N_SHAPE).to(torch.float32)
    out64, out32 = layer64(params), layer32(params.to(dtype=torch.float32))
    assert out64.vertices.dtype == torch.float64 and out32.vertices.dtype == torch.float32
    assert layer32.faces.dtype == torch.long and layer32.parents.dtype == torch.long
    for a, b in ((out64.vertices, out32.vertices), (out64.landmarks2d, out32.landmarks2d)):
        torch.testing.assert_close(b.double(), a, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="float32"):
        layer64(params.to(dtype=torch.float32))


@pytest.mark.parametrize(
    "yaw, row", [(0.0, 0), (10.0, 10), (-10.0, 49), (45.0, 39), (-45.0, 78), (39.0, 39), (-39.0, 78), (-1.0, 40),
                 (0.5, 0), (1.5, 2), (-1.5, 41), (2.5, 2)]
)
def test_contour_row_table(yaw, row):
    assert contour_rows(torch.tensor([yaw], dtype=torch.float64)).tolist() == [row]


@pytest.mark.parametrize("yaw, row", [(0.0, 0), (10.0, 10), (-10.0, 49), (45.0, 39), (-45.0, 78)])
def test_contour_row_from_pose(yaw, row):
    # a rotation by +yaw about +Y has R[2, 0] = -sin(yaw): DECA's formula reads +yaw (not the smplx mirror)
    half = math.radians(yaw) / 2
    global_pose = torch.tensor([[0.0, half, 0.0]], dtype=torch.float64)
    neck_pose = torch.tensor([[0.0, half, 0.0]], dtype=torch.float64)
    measured = contour_yaw_degrees(global_pose, neck_pose)
    torch.testing.assert_close(measured, torch.tensor([yaw], dtype=torch.float64))
    assert contour_rows(measured).tolist() == [row]


def test_landmarks_match_reference(flame, model, emb):
    params = random_params(3, seed=11)
    yaws = [10.0, -10.0, -45.0]
    rot = torch.tensor([[0.0, math.radians(y), 0.0] for y in yaws], dtype=torch.float64)
    params = FlameParams(params.shape, params.expression, rot, torch.zeros_like(rot), params.jaw_pose, params.eye_pose)
    out = flame(params)
    for n, row in enumerate([10, 49, 78]):
        verts = out.vertices[n].numpy()
        idx = np.concatenate([emb.dynamic_lmk_faces_idx[row], emb.static_lmk_faces_idx])
        bary = np.concatenate([emb.dynamic_lmk_bary_coords[row], emb.static_lmk_bary_coords])
        np.testing.assert_allclose(out.landmarks2d[n].numpy(), ref_bary(verts, model.faces, idx, bary), atol=1e-12)
        full = ref_bary(verts, model.faces, emb.full_lmk_faces_idx, emb.full_lmk_bary_coords)
        np.testing.assert_allclose(out.landmarks3d[n].numpy(), full, atol=1e-12)
        np.testing.assert_allclose(out.landmarks7[n].numpy(), full[17:][[19, 22, 25, 28, 16, 31, 37]], atol=1e-12)


def test_neutral_zeroes_expression_and_pose(flame):
    params = random_params(2, seed=2)
    neutral = flame.neutral(params)
    zero = FlameParams.zeros(2, N_SHAPE, N_EXP, dtype=torch.float64)
    expected = flame(FlameParams(params.shape, zero.expression, zero.global_pose, zero.neck_pose, zero.jaw_pose,
                                 zero.eye_pose))
    assert torch.equal(neutral.vertices, expected.vertices)
    assert not torch.allclose(neutral.vertices, flame(params).vertices)


def test_coefficient_counts_are_checked(model, emb):
    with pytest.raises(ValueError, match="n_shape=7"):
        FLAME(model, emb, n_shape=7, n_exp=2, shape_dims_in_file=N_SHAPE)
    with pytest.raises(ValueError, match="n_exp=5"):
        FLAME(model, emb, n_shape=2, n_exp=5, shape_dims_in_file=N_SHAPE)
    layer = FLAME(model, emb, n_shape=3, n_exp=2, shape_dims_in_file=N_SHAPE)
    assert layer.shapedirs.shape == (model.n_vertices, 3, 5)
    np.testing.assert_array_equal(layer.shapedirs[:, :, 3:].double().numpy(),
                                  model.shapedirs[:, :, N_SHAPE : N_SHAPE + 2].astype(np.float32))
    with pytest.raises(ValueError, match="expression"):
        layer(FlameParams.zeros(1, 3, 4))


def test_from_files_round_trip(tmp_path, model, emb, flame):
    write_flame_model(tmp_path / "generic_model.pkl", model)
    write_landmark_embedding(tmp_path / "landmark_embedding.npy", emb)
    loaded = FLAME.from_files(tmp_path / "generic_model.pkl", tmp_path / "landmark_embedding.npy",
                              n_shape=N_SHAPE, n_exp=N_EXP, shape_dims_in_file=N_SHAPE, dtype=torch.float64)
    params = random_params(1, seed=9)
    a, b = loaded(params), flame(params)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.landmarks2d, b.landmarks2d)
