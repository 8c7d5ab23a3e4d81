"""Face estimators: network estimator (embedded + DECA/MICA files), oracle with noise, crop camera maths, configs."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import get_method, instantiate
from omegaconf import OmegaConf

from albedogan.models.estimator import (
    GroundTruthEstimator,
    NetworkEstimator,
    ShapeNetwork,
    build_deca_mica_estimator,
    build_embedded_estimator,
    crop_boxes,
    crop_camera_to_image,
)
from albedogan.nets.arcface import iresnet50
from albedogan.nets.encoder import AMBIENT_LIGHT_DC, CompactEncoder, DecaEncoder
from albedogan.nets.identity import IdentityEmbedder
from albedogan.nets.mica import MappingNetwork
from albedogan.render import weak_perspective_project
from albedogan.structures import FaceEstimate, FlameParams, GroundTruth
from tests.helpers.compact_state import compact_random_state

CONF = Path(__file__).resolve().parents[2] / "conf" / "estimator"


@pytest.fixture(scope="module")
def embedded() -> NetworkEstimator:
    torch.manual_seed(0)
    return build_embedded_estimator(n_shape=300, n_exp=50, input_size=32, channels=(8, 16), hidden_dim=32)


def test_untrained_embedded_estimator_predicts_mean_face_in_frame(embedded, synthetic_head_model) -> None:
    images = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        est = embedded(images)
    assert isinstance(est, FaceEstimate)
    p = est.params
    assert p.shape.shape == (2, 300) and p.expression.shape == (2, 50) and p.eye_pose.shape == (2, 6)
    for t in (p.shape, p.expression, p.global_pose, p.jaw_pose, p.neck_pose):
        assert torch.all(t == 0)
    torch.testing.assert_close(est.cam, torch.tensor([[7.0, 0.0, 0.0]] * 2))
    expected_light = torch.zeros(2, 9, 3)
    expected_light[:, 0] = AMBIENT_LIGHT_DC
    torch.testing.assert_close(est.light, expected_light)
    verts = synthetic_head_model(p).vertices
    ndc = weak_perspective_project(verts, est.cam)
    extent = ndc[..., :2].amax(1) - ndc[..., :2].amin(1)  # (N, 2)
    assert ndc[..., :2].abs().max() < 1.0 and extent.min() > 1.0  # whole head inside, filling > half the image


def test_trainable_selection_and_gradients(embedded) -> None:
    names = [g["name"] for g in embedded.parameter_groups()]
    assert names == ["encoder", "identity_upper", "shape_mapping"]
    sface = embedded.shape_net.identity.net
    assert not any(q.requires_grad for q in sface.stem.parameters())
    assert not any(q.requires_grad for q in sface.blocks[-2].parameters())
    assert all(q.requires_grad for q in sface.blocks[-1].parameters()) and sface.pre_fc1.weight.requires_grad
    embedded.train()
    assert embedded.training and not sface.stem.bn.training and sface.blocks[-1].pw.bn.training
    embedded.eval()
    assert not sface.blocks[-1].pw.bn.training

    # MICA-style selection on a copy: only the mapping trains, everything else is frozen and in eval mode
    shape_net = ShapeNetwork(IdentityEmbedder(copy.deepcopy(sface), "sface", frozen=False), MappingNetwork(128, 16, 300, 1))
    only_mapping = NetworkEstimator(CompactEncoder(32, channels=(8,), hidden_dim=8), shape_net, trainable=["shape_mapping"])
    groups = only_mapping.parameter_groups()
    assert [g["name"] for g in groups] == ["shape_mapping"]
    assert {id(q) for q in groups[0]["params"]} == {id(q) for q in shape_net.mapping.parameters()}
    only_mapping.train()
    assert not only_mapping.encoder.training and not shape_net.identity.net.training
    est = only_mapping(torch.rand(2, 3, 40, 40))
    (est.params.shape.square().sum() + est.cam.sum()).backward()
    assert shape_net.mapping.output.weight.grad is not None
    assert all(q.grad is None for q in only_mapping.encoder.parameters())
    assert all(q.grad is None for q in shape_net.identity.net.parameters())
    with pytest.raises(ValueError, match="unknown trainable"):
        NetworkEstimator(CompactEncoder(32, channels=(8,)), shape_net, trainable=["decoder"])
    with pytest.raises(ValueError, match="no shape network"):
        NetworkEstimator(CompactEncoder(32, channels=(8,)), None, trainable=["shape_mapping"])


def test_crop_camera_matches_projection_through_the_crop() -> None:
    torch.manual_seed(1)
    images = torch.zeros(3, 3, 64, 64)
    lmk5 = torch.rand(3, 5, 2) * 20 + 18
    boxes = crop_boxes(images, lmk5, scale=2.5)
    points = torch.randn(3, 10, 3) * 0.1
    cam = torch.tensor([[7.0, 0.01, -0.02], [5.0, 0.0, 0.03], [9.0, -0.02, 0.0]])
    in_crop = weak_perspective_project(points, cam)  # crop NDC
    in_image = in_crop[..., :2] * boxes[:, None, 2:4] + boxes[:, None, :2]  # crop NDC -> image NDC
    converted = weak_perspective_project(points, crop_camera_to_image(cam, boxes))
    torch.testing.assert_close(converted[..., :2], in_image)
    centre_ndc = (lmk5.mean(1) + 0.5) / 32 - 1
    torch.testing.assert_close(boxes[:, :2], centre_ndc)


def test_landmark_crop_recentres_camera(embedded) -> None:
    images = torch.rand(1, 3, 48, 48)
    lmk5 = torch.tensor([[[16.0, 18.0], [30.0, 18.0], [23.0, 26.0], [18.0, 32.0], [28.0, 32.0]]])
    with torch.no_grad():
        est = embedded(images, landmarks5=lmk5)
    box = crop_boxes(images, lmk5, embedded.crop_scale)
    torch.testing.assert_close(est.cam, crop_camera_to_image(torch.tensor([[7.0, 0.0, 0.0]]), box))


@pytest.fixture(scope="module")
def official_files(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("official")
    with torch.device("meta"):
        e_flame = DecaEncoder().state_dict()
        arc = iresnet50().state_dict()
    torch.manual_seed(3)
    e_state = compact_random_state(e_flame, seed=11)
    mapping = {f"regressor.{k}": v.clone() for k, v in MappingNetwork().state_dict().items()}
    torch.save({"E_flame": e_state, "E_detail": {}, "D_detail": {}}, root / "deca_model.tar")
    torch.save({"arcface": compact_random_state(arc, seed=12), "flameModel": mapping}, root / "mica.tar")
    return root / "deca_model.tar", root / "mica.tar", mapping


def test_deca_mica_estimator_from_files(official_files) -> None:
    deca_path, mica_path, mapping = official_files
    est_net = build_deca_mica_estimator(deca_path, mica_path)
    assert not est_net.training and not est_net.shape_net.mapping.training
    assert [g["name"] for g in est_net.parameter_groups()] == ["identity_upper", "shape_mapping"]
    arc = est_net.shape_net.identity.net
    assert not arc.layer3[0].conv1.weight.requires_grad and arc.layer4[0].conv1.weight.requires_grad
    assert not arc.features.weight.requires_grad
    image = torch.rand(1, 3, 64, 64)
    seen: dict = {}  # record what the sub-networks received / returned inside one estimator call (no re-runs)
    est_net.encoder.register_forward_hook(lambda m, args, out: seen.update(crop=args[0], code=out))
    est_net.shape_net.identity.register_forward_hook(lambda m, args, out: seen.update(embedding=out))
    with torch.no_grad():
        est = est_net(image)
        crop = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", align_corners=False)
        ref_map = MappingNetwork()
        ref_map.load_state_dict({k[len("regressor."):]: v for k, v in mapping.items()})
        ref_shape = ref_map(seen["embedding"])
    code = seen["code"]
    torch.testing.assert_close(seen["crop"], crop)
    torch.testing.assert_close(seen["embedding"].norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(est.params.expression, code.expression)
    torch.testing.assert_close(est.params.deca_pose, code.pose)
    torch.testing.assert_close(est.cam, code.cam)  # full-image crop: DECA's camera as-is
    torch.testing.assert_close(est.light, code.light)
    torch.testing.assert_close(est.params.shape, ref_shape)

    deca_only = build_deca_mica_estimator(deca_path, None, trainable=["shape_mapping", "encoder"])
    assert [g["name"] for g in deca_only.parameter_groups()] == ["encoder"]
    with torch.no_grad():
        shape = deca_only(image).params.shape
    assert shape.shape == (1, 300) and torch.all(shape[:, 100:] == 0)
    torch.testing.assert_close(shape[:, :100], code.shape)  # same deca_model.tar as above


def _truth(n: int) -> GroundTruth:
    g = torch.Generator().manual_seed(4)
    params = FlameParams(*(torch.randn(n, k, generator=g) for k in (300, 50, 3, 3, 3, 6)))
    cam = torch.cat([torch.full((n, 1), 7.0), torch.zeros(n, 2)], dim=1)
    est = FaceEstimate(params, cam, torch.randn(n, 9, 3, generator=g))
    return GroundTruth(est, torch.rand(n, 3, 8, 8), torch.zeros(n, 68, 2), torch.ones(n, 1, 4, 4))


def test_ground_truth_estimator_and_noise() -> None:
    truth = _truth(512)
    images = torch.zeros(512, 3, 4, 4)
    exact = GroundTruthEstimator()(images, truth)
    for a, b in ((exact.params.shape, truth.estimate.params.shape), (exact.cam, truth.estimate.cam)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="ground truth"):
        GroundTruthEstimator()(images, None)
    with pytest.raises(ValueError, match=">= 0"):
        GroundTruthEstimator(shape_std=-1.0)
    torch.manual_seed(0)
    noisy = GroundTruthEstimator(shape_std=0.1, pose_std=0.05, cam_scale_std=0.1, light_std=0.2)(images, truth)
    t = truth.estimate
    assert float((noisy.params.shape - t.params.shape).std()) == pytest.approx(0.1, rel=0.05)
    assert float((noisy.params.global_pose - t.params.global_pose).std()) == pytest.approx(0.05, rel=0.1)
    assert float((noisy.light - t.light).std()) == pytest.approx(0.2, rel=0.05)
    assert float(torch.log(noisy.cam[:, 0] / t.cam[:, 0]).std()) == pytest.approx(0.1, rel=0.15)
    assert torch.equal(noisy.params.expression, t.params.expression) and torch.equal(noisy.cam[:, 1:], t.cam[:, 1:])
    assert torch.equal(noisy.params.neck_pose, t.params.neck_pose)
    padded = GroundTruthEstimator(n_shape=320, n_exp=20)(images[:2], truth[:2])
    assert padded.params.shape.shape == (2, 320) and torch.all(padded.params.shape[:, 300:] == 0)
    assert torch.equal(padded.params.expression, t.params.expression[:2, :20])


@pytest.mark.parametrize("name", ["deca_mica", "embedded", "ground_truth"])
def test_configs_match_factories(name: str) -> None:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    target = get_method(cfg._target_)
    params = inspect.signature(target).parameters
    keys = set(cfg) - {"_target_"}
    assert keys <= set(params), keys - set(params)
    required = {k for k, p in params.items() if p.default is inspect.Parameter.empty and k != "self"}
    assert required <= keys
    if name == "ground_truth":  # sizes are interpolated from the flame group
        est = instantiate(OmegaConf.merge({"flame": {"n_shape": 300, "n_exp": 50}}, {"estimator": cfg}).estimator)
        assert isinstance(est, GroundTruthEstimator) and est.n_shape == 300


def test_shape_head_trains_only_the_shape_rows() -> None:
    torch.manual_seed(0)
    est = build_embedded_estimator(n_shape=20, n_exp=10, input_size=32, channels=(8, 16), hidden_dim=32,
                                   pooling="flatten", shape_network=False, trainable=["shape_head"])
    layer = est.encoder.output_layer
    rows = est.encoder.output_sizes["shape"]
    groups = est.parameter_groups()
    assert [g["name"] for g in groups] == ["shape_head"]
    assert {id(p) for p in groups[0]["params"]} == {id(layer.weight), id(layer.bias)}
    assert not any(p.requires_grad for n, p in est.encoder.named_parameters() if not n.startswith("head.2."))
    before = {k: v.detach().clone() for k, v in est.encoder.state_dict().items()}
    opt = torch.optim.Adam(groups[0]["params"], lr=1e-2)
    images = torch.rand(4, 3, 32, 32)
    for _ in range(3):  # every output receives gradient, only the shape rows may move
        out = est.train()(images)
        loss = out.params.shape.pow(2).sum() + (out.params.shape - 1).abs().sum() + out.cam.sum() + out.light.sum() \
            + out.params.expression.sum() + out.params.global_pose.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = est.encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.2.weight", "head.2.bias"}
    assert not torch.equal(after["head.2.weight"][:rows], before["head.2.weight"][:rows])
    assert torch.equal(after["head.2.weight"][rows:], before["head.2.weight"][rows:])
    assert torch.equal(after["head.2.bias"][rows:], before["head.2.bias"][rows:])


def test_shape_head_needs_an_encoder_shape() -> None:
    with pytest.raises(ValueError, match="shape network"):
        NetworkEstimator(CompactEncoder(32, channels=(8,), hidden_dim=8),
                         ShapeNetwork(IdentityEmbedder(iresnet50(), "arcface"), MappingNetwork(512, 16, 20)),
                         n_shape=20, n_exp=10, trainable=["shape_head"])
