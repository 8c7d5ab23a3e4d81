"""AlbedoTargetBuilder: unwrapped targets against known albedos rendered with FaceRenderer (synthetic head, 48 px)."""

from __future__ import annotations

import math

import pytest
import torch

from albedogan.render.cameras import framing_camera
from albedogan.models.estimator import GroundTruthEstimator
from albedogan.models.targets import AlbedoTarget, AlbedoTargetBuilder
from albedogan.render import FaceRenderer, UVSpace, WeakPerspectiveCamera, directional_sh_coeffs
from albedogan.structures import FaceEstimate, FlameParams, GroundTruth

IMAGE = 48
UV = 32


def symmetric_albedo(head, n: int, res: int) -> torch.Tensor:
    """(n, 3, res, res) smooth albedo in [0.25, 0.8], mirror-symmetric on the head: a function of the template
    position (|x|, y, z) in the head's UV layout (which is not symmetric about u = 0.5); uncovered texels are
    filled from their covered neighbours so bilinear lookups at island borders stay on the albedo."""
    space = UVSpace(head.faces, head.verts_uvs, head.faces_uvs, res)
    x, y, z = space.attribute_map(head.flame.v_template.double()[None])[0]  # (res, res) each, metres
    r = 0.6 + 0.2 * torch.cos(60 * x.abs()) * torch.cos(20 * y)
    g = 0.45 + 0.15 * torch.cos(40 * x.abs())
    b = 0.35 + 0.1 * torch.sin(30 * y + 10 * z)
    tex, cov = torch.stack([r, g, b])[None].float() * space.coverage, space.coverage
    for _ in range(8):  # grow the islands into the empty texels
        total = torch.nn.functional.avg_pool2d(torch.cat([tex * cov, cov], 1), 3, 1, 1, count_include_pad=False)
        grown = total[:, :3] / total[:, 3:].clamp_min(1e-8)
        tex = torch.where(cov > 0, tex, grown)
        cov = torch.maximum(cov, (total[:, 3:] > 0).float())
    return tex.expand(n, 3, res, res).clone()


def ambient_light(n: int) -> torch.Tensor:
    light = torch.zeros(n, 9, 3)
    light[:, 0] = math.sqrt(4 * math.pi)  # shading exactly 1
    return light


@pytest.fixture(scope="module")
def head(synthetic_head_model):
    return synthetic_head_model


@pytest.fixture(scope="module")
def renderer(head) -> FaceRenderer:
    return FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, IMAGE)


@pytest.fixture(scope="module")
def builder(head) -> AlbedoTargetBuilder:
    return AlbedoTargetBuilder(head, UV, delight=True, mirror=True, region="face_eye")


def render(head, renderer, yaw_degrees: float, light: torch.Tensor) -> tuple[torch.Tensor, FaceEstimate]:
    """One image of the neutral head turned by ``yaw_degrees`` with the symmetric albedo, and its true estimate."""
    params = head.zero_params(1)
    yaw = torch.tensor([[0.0, math.radians(yaw_degrees), 0.0]])
    params = FlameParams(params.shape, params.expression, yaw, params.neck_pose, params.jaw_pose, params.eye_pose)
    cam = framing_camera(head(head.zero_params(1)).vertices).cam
    albedo = symmetric_albedo(head, 1, 128)
    out = renderer.render_world(head(params).vertices, WeakPerspectiveCamera(cam), albedo, light)
    return out.image, FaceEstimate(params, cam, light)


def mean_error(target: AlbedoTarget, mask: torch.Tensor, head) -> float:
    diff = (target.texture - symmetric_albedo(head, 1, UV)).abs() * mask
    return float(diff.sum() / (3 * mask.sum()))


def test_target_equals_true_albedo_on_visible_texels(head, renderer, builder) -> None:
    image, estimate = render(head, renderer, 0.0, ambient_light(1))
    target = builder(image, estimate)
    assert target.texture.shape == (1, 3, UV, UV) and target.weight.shape == (1, 1, UV, UV)
    seen = (target.visibility > 0).float() * builder.region
    assert seen.sum() > 0.5 * builder.region.sum()
    assert mean_error(target, seen, head) < 0.01
    assert float(target.weight.min()) >= 0.0 and float(target.weight.max()) <= 1.0
    assert torch.all(target.weight[seen > 0] == 1.0)  # frontal: every directly seen texel is fully trusted
    assert torch.all(target.weight[builder.region.expand_as(target.weight) == 0] == 0.0)  # filled: weight 0
    assert 0.5 < float(target.visible_fraction) <= float(target.completed_fraction) <= 1.0


def test_oracle_estimator_feeds_the_builder(head, renderer, builder) -> None:
    image, estimate = render(head, renderer, 0.0, ambient_light(1))
    truth = GroundTruth(estimate, symmetric_albedo(head, 1, UV), torch.zeros(1, 68, 2), torch.ones(1, 1, IMAGE, IMAGE))
    oracle = GroundTruthEstimator()(image, truth)
    direct = builder(image, estimate)
    via_oracle = builder(image, oracle)
    torch.testing.assert_close(via_oracle.texture, direct.texture)


def test_delighting_recovers_albedo_from_lit_render(head, renderer, builder) -> None:
    light = directional_sh_coeffs(torch.tensor([0.6, 0.3, 1.0]), intensity=0.8, ambient=0.4)
    image, estimate = render(head, renderer, 0.0, light)
    raw = AlbedoTargetBuilder(head, UV, delight=False, region="face_eye")(image, estimate)
    delit = builder(image, estimate)
    seen = (delit.visibility > 0).float() * builder.region
    err_raw, err_delit = mean_error(raw, seen, head), mean_error(delit, seen, head)
    assert err_delit < 0.03 and err_delit < 0.3 * err_raw, (err_delit, err_raw)
    overridden = builder(image, estimate, delight=False)  # per-call override = a builder made with delight=False
    torch.testing.assert_close(overridden.texture, raw.texture, rtol=0, atol=0)
    torch.testing.assert_close(builder(image, estimate, delight=True).texture, delit.texture, rtol=0, atol=0)


def test_mirror_completion_on_yawed_head(head, renderer, builder) -> None:
    image, estimate = render(head, renderer, 45.0, ambient_light(1))
    plain = AlbedoTargetBuilder(head, UV, mirror=False, yaw_weighting=False, region="face_eye")(image, estimate)
    mirrored = builder(image, estimate)
    assert float(mirrored.completed_fraction) > float(plain.completed_fraction) + 0.1
    assert float(plain.completed_fraction) == pytest.approx(float(plain.visible_fraction))
    region = builder.region
    only_mirror = (mirrored.visibility == 0).float() * (mirrored.weight > 0).float() * region
    assert only_mirror.sum() > 20
    assert mean_error(mirrored, only_mirror, head) < 0.01  # symmetric albedo: the partner is right (flip: 0.025)
    inside = mirrored.weight[only_mirror > 0]
    assert float(inside.max()) <= builder.mirror_weight + 1e-6 and float(inside.min()) > 0.0
    assert mean_error(mirrored, region, head) < mean_error(plain, region, head)


def test_yaw_confidence_follows_magnitude_and_far_side(head, renderer, builder) -> None:
    conf0 = builder.yaw_confidence(render(head, renderer, 0.0, ambient_light(1))[1])
    assert torch.all(conf0 == 1.0)
    image, estimate = render(head, renderer, 30.0, ambient_light(1))
    conf = builder.yaw_confidence(estimate)
    values = torch.unique(conf)
    torch.testing.assert_close(values, torch.tensor([0.5, 1.0]))  # 30/60 degrees on the far half, 1 elsewhere
    far = (conf < 1).float() * builder.region
    near = (conf == 1).float() * builder.region * (builder.texel_side != 0).float()
    vis = builder(image, estimate).visibility
    # independent check of the side convention: the far half is the one the renderer shows less of
    assert float((vis * far).sum() / far.sum()) < float((vis * near).sum() / near.sum()) - 0.1
    flipped = builder.yaw_confidence(render(head, renderer, -30.0, ambient_light(1))[1])
    torch.testing.assert_close(flipped, torch.where(builder.texel_side != 0, 1.5 - conf, conf))  # other half


def test_fill_modes(head, renderer) -> None:
    image, estimate = render(head, renderer, 20.0, ambient_light(1))
    grey = AlbedoTargetBuilder(head, UV, fill="mean", fill_weight=0.1, mean_albedo=[0.3, 0.2, 0.1])(image, estimate)
    empty = AlbedoTargetBuilder(head, UV, fill="none")(image, estimate)
    region = AlbedoTargetBuilder(head, UV).region
    outside = (region == 0).expand(1, 3, UV, UV)
    expected = torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1).expand(1, 3, UV, UV)
    torch.testing.assert_close(grey.texture[outside], expected[outside])
    assert torch.allclose(grey.weight[region.expand_as(grey.weight) == 0], torch.tensor(0.1))
    assert torch.all(empty.texture[outside] == 0) and torch.all(empty.weight[region.expand_as(empty.weight) == 0] == 0)
    per_image = AlbedoTargetBuilder(head, UV, fill="mean")(image, estimate)
    w = per_image.weight
    ref = (per_image.texture * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3))  # weighted mean of trusted texels
    torch.testing.assert_close(per_image.texture[0, :, 0, 0], ref[0], atol=2e-3, rtol=0)  # corner texel is filled


def test_no_gradient_and_inputs_untouched(head, renderer, builder) -> None:
    image, estimate = render(head, renderer, 10.0, ambient_light(1))
    image = image.detach().requires_grad_(True)
    before = (image.detach().clone(), estimate.cam.clone(), estimate.light.clone())
    target = builder(image, estimate)
    assert not target.texture.requires_grad and not target.weight.requires_grad
    assert torch.equal(image.detach(), before[0]) and torch.equal(estimate.cam, before[1])
    assert torch.equal(estimate.light, before[2])
    half = target[0:1].to(torch.float64)
    assert half.texture.dtype == torch.float64


def test_bad_arguments(head) -> None:
    with pytest.raises(ValueError, match="fill"):
        AlbedoTargetBuilder(head, UV, fill="zero")
    with pytest.raises(ValueError, match="region"):
        AlbedoTargetBuilder(head, UV, region="scalp")
    with pytest.raises(ValueError, match="mirror_weight"):
        AlbedoTargetBuilder(head, UV, mirror_weight=1.5)
    with pytest.raises(ValueError, match="delight_min_shading"):
        AlbedoTargetBuilder(head, UV, delight_min_shading=0.0)
