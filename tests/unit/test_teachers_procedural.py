"""ProceduralTeacher: determinism, batch independence, exact truth, ranges, truncation, frozen, dtype, semantics."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from albedogan.render import FaceRenderer, WeakPerspectiveCamera
from albedogan.teachers.procedural import ProceduralTeacher, _polygon_sdf, palette_lookup

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(image_size=32, uv_resolution=32, z_dim=16, w_dim=16, num_ws=4, calibration_samples=256)


@pytest.fixture(scope="module")
def teacher(synthetic_head_model) -> ProceduralTeacher:
    return ProceduralTeacher(synthetic_head_model, seed=3, **TINY)


def _z(n: int, seed: int = 0, dim: int = 16) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_same_seed_same_world_different_seed_different(synthetic_head_model, teacher) -> None:
    z = _z(3)
    a = teacher.sample(z)
    b = ProceduralTeacher(synthetic_head_model, seed=3, **TINY).sample(z)
    assert torch.equal(a.image, b.image) and torch.equal(a.ws, b.ws)
    assert torch.equal(a.truth.albedo, b.truth.albedo)
    c = ProceduralTeacher(synthetic_head_model, seed=4, **TINY).sample(z)
    assert (a.image - c.image).abs().mean() > 1e-2
    assert a.image.shape == (3, 3, 32, 32) and a.ws.shape == (3, 4, 16) and torch.equal(a.z, z)
    assert a.truth.albedo.shape == (3, 3, 32, 32) and a.truth.landmarks2d.shape == (3, 68, 2)


def test_sample_alone_equals_sample_in_batch(teacher) -> None:
    z = _z(4, seed=1)
    batch = teacher.sample(z)
    alone = teacher.sample(z[2:3])
    torch.testing.assert_close(alone.image[0], batch.image[2], atol=1e-4, rtol=0)  # float32 BLAS blocking
    torch.testing.assert_close(alone.truth.albedo[0], batch.truth.albedo[2], atol=1e-6, rtol=0)
    torch.testing.assert_close(alone.truth.estimate.cam[0], batch.truth.estimate.cam[2], atol=1e-6, rtol=1e-6)


def test_truth_rerenders_the_image_exactly(synthetic_head_model, teacher) -> None:
    s = teacher.sample(_z(3, seed=2))
    est = s.truth.estimate
    head = synthetic_head_model
    out = head(est.params)
    renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, 32)
    again = renderer.render_world(out.vertices, WeakPerspectiveCamera(est.cam), s.truth.albedo, est.light,
                                  landmarks=out.landmarks2d)
    assert torch.equal(again.alpha, s.truth.alpha)
    alpha = s.truth.alpha.bool().expand_as(s.image)
    assert alpha.sum() > 0.15 * alpha.numel()  # the head fills a good part of the frame
    torch.testing.assert_close(again.image.clamp(0, 1)[alpha], s.image[alpha], atol=1e-6, rtol=0)
    torch.testing.assert_close(again.landmarks, s.truth.landmarks2d)
    # landmarks project onto the head's silhouette: all of nose, eyes and mouth; contour/brow ends may graze the edge
    grid = s.truth.landmarks2d[:, None]  # (N, 1, 68, 2) image NDC = grid_sample convention
    hit = F.grid_sample(s.truth.alpha, grid, mode="nearest", align_corners=False)[:, 0, 0]  # (N, 68)
    assert hit[:, 27:60].min() == 1.0 and hit.mean() > 0.9
    assert s.truth.landmarks2d.abs().max() < 1.0


def test_ranges_respected_and_used(teacher) -> None:
    ws = teacher.mapping(_z(512, seed=5))
    world = teacher.decode(ws)
    p = world.params
    yaw, pitch, roll = p.global_pose[:, 1], p.global_pose[:, 0], p.global_pose[:, 2]
    pose, coefficients, camera = teacher.pose_prior, teacher.coefficient_prior, teacher.camera_prior
    for value, limit in ((yaw, pose.yaw_max), (pitch, pose.pitch_max), (roll, pose.roll_max)):
        assert value.abs().max() <= limit and value.abs().max() > 0.6 * limit
    jaw = p.jaw_pose[:, 0]
    assert jaw.min() >= 0 and jaw.max() <= pose.jaw_max and jaw.max() - jaw.min() > 0.5 * pose.jaw_max
    assert p.shape.abs().max() <= 3 * coefficients.shape_std and 0.6 < p.shape.std() < 1.3
    assert p.expression.abs().max() <= 3 * coefficients.expression_std
    assert torch.all(p.neck_pose == 0) and torch.all(p.eye_pose == 0)
    assert world.cam_jitter[:, 0].abs().max() <= camera.scale_jitter
    assert world.cam_jitter[:, 1:].abs().max() <= camera.translation_jitter
    for codes in (world.albedo_codes, world.background_codes):
        assert codes.abs().max() <= 1
    # codes are roughly uniform on (-1, 1): the mean |u| of a uniform is 1/2
    assert abs(world.albedo_codes.abs().mean().item() - 0.5) < 0.1
    albedo = teacher.albedo(world.albedo_codes[:64])
    assert albedo.min() >= 0 and albedo.max() <= 1
    bg = teacher.background(world.background_codes[:8])
    assert bg.shape == (8, 3, 32, 32) and bg.min() >= 0 and bg.max() <= 1


def test_truncation_psi_zero_gives_the_mean_face(teacher) -> None:
    z = _z(2, seed=6)
    ws0 = teacher.mapping(z, psi=0.0)
    assert torch.equal(ws0, teacher.w_avg.expand(2, 4, 16))
    s = teacher.sample(z, psi=0.0)
    assert torch.equal(s.image[0], s.image[1])
    p = s.truth.estimate.params
    assert torch.all(p.shape == 0) and torch.all(p.expression == 0) and torch.all(p.global_pose == 0)
    ws1, ws_half = teacher.mapping(z, psi=1.0), teacher.mapping(z, psi=0.5)
    torch.testing.assert_close(ws_half - teacher.w_avg, 0.5 * (ws1 - teacher.w_avg), atol=1e-6, rtol=0)
    assert torch.equal(ws1[:, 0], ws1[:, 3])  # w broadcast to every W+ row
    # w_avg is the mean mapped w (independent estimate from fresh samples)
    wide = teacher.mapping(_z(4096, seed=7), psi=1.0)[:, 0]
    assert (wide.mean(0) - teacher.w_avg).norm() < 0.1 * wide.std(0).norm()


def test_frozen_and_eval(teacher) -> None:
    assert all(not p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not any(m.training for m in teacher.modules())
    z = _z(1).requires_grad_(True)
    s = teacher.sample(z)
    assert not s.image.requires_grad and not s.ws.requires_grad


def test_float64(teacher) -> None:
    t64 = copy.deepcopy(teacher).double()
    z = _z(2, seed=8)
    s64, s32 = t64.sample(z.double()), teacher.sample(z)
    assert s64.image.dtype == torch.float64 and s64.truth.albedo.dtype == torch.float64
    assert s64.truth.estimate.light.dtype == torch.float64
    torch.testing.assert_close(s64.truth.albedo.float(), s32.truth.albedo, atol=1e-4, rtol=0)
    agree = (s64.truth.alpha == s32.truth.alpha).expand_as(s32.image)
    assert agree.float().mean() > 0.98
    assert (s64.image.float() - s32.image)[agree].abs().mean() < 1e-3


def test_albedo_is_nearly_symmetric_and_varied(synthetic_head_model) -> None:
    t = ProceduralTeacher(synthetic_head_model, seed=0, **{**TINY, "uv_resolution": 64})
    albedo = t.albedo(t.decode(t.mapping(_z(32, seed=9))).albedo_codes)
    face = F.interpolate(synthetic_head_model.uv_face_mask, size=64, mode="nearest").bool()[0, 0]  # (64, 64)
    # FLAME-style UV layouts are left/right symmetric about u = 0.5: mirroring is a flip of the width axis
    asym = (albedo - albedo.flip(-1)).abs()[..., face].mean()
    assert asym < 0.03
    luminance = albedo[..., face].mean(-1).mean(1)  # (N,) mean face luminance per sample
    assert luminance.max() - luminance.min() > 0.25  # light to dark skin tones


def test_semantic_regions_sit_at_the_landmarks(synthetic_head_model) -> None:
    head = synthetic_head_model
    t = ProceduralTeacher(head, seed=0, **{**TINY, "uv_resolution": 128})
    flame = head.flame
    faces = flame.full_lmk_faces_idx  # (68,) landmark faces and barycentrics -> UV coordinates
    uv = (flame.full_lmk_bary_coords[..., None] * head.verts_uvs[head.faces_uvs[faces]]).sum(1)  # (68, 2)
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1)[None, None]  # (1, 1, 68, 2)
    look = lambda m: F.grid_sample(m, grid, mode="bilinear", align_corners=False)[0, 0, 0]  # noqa: E731
    assert look(t.map_lip_sdf)[[61, 62, 63, 65, 66, 67]].max() < 0  # inner-lip points are inside the lips
    assert look(t.map_lip_sdf)[[30, 8, 36]].min() > 0.005  # nose tip, chin, eye corner are not
    assert look(t.map_brow_dist)[17:27].max() < 0.003  # brows are painted on the brow landmarks (metres)
    assert look(t.map_eye_dist)[36:48].max() < 0.003  # the lash line follows the eye contour
    assert look(t.map_brow_dist)[[30, 8, 51]].min() > 0.02


def test_palette_and_polygon_helpers() -> None:
    pal = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    out = palette_lookup(pal, torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0]))
    expected = torch.tensor([[0, 0, 0], [0.5, 0.25, 0], [1, 0.5, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(out, expected)
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pts = torch.tensor([[0.5, 0.5], [0.25, 0.5], [2.0, 0.5], [0.5, -0.5], [2.0, 2.0]])
    torch.testing.assert_close(_polygon_sdf(pts, square), torch.tensor([-0.5, -0.25, 1.0, 0.5, math.sqrt(2)]))


def test_hydra_config_instantiates(synthetic_head_model) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf/teacher/procedural.yaml")
    assert OmegaConf.is_missing(cfg, "head")
    cfg = OmegaConf.merge(cfg, TINY)
    t = instantiate(cfg, head=synthetic_head_model)
    assert isinstance(t, ProceduralTeacher) and t.image_size == 32 and t.pose_prior.yaw_max == cfg.pose.yaw_max
    assert t.sample(_z(1)).image.shape == (1, 3, 32, 32)


def test_bad_arguments_raise(synthetic_head_model) -> None:
    with pytest.raises(ValueError, match="ambient_range"):
        ProceduralTeacher(synthetic_head_model, light={"ambient_range": (0.8, 0.2)}, **TINY)
    with pytest.raises(ValueError, match="pose: .*yaw"):
        ProceduralTeacher(synthetic_head_model, pose={"yaw": 0.3}, **TINY)  # a misspelt field names the record
    with pytest.raises(ValueError, match="image_size"):
        ProceduralTeacher(synthetic_head_model, **{**TINY, "image_size": 0})
