"""FaceFitter and its parts: the reduced landmark FLAME, skin masks, camera solve, crop ↔ source frames."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from albedogan.datamodules.alignment import landmark_crop_matrices, warp_affine
from albedogan.fitting import FaceFitter, FitStage, skin_mask_from_landmarks
from albedogan.fitting.frames import crop_estimate_to_source
from albedogan.fitting.landmark_flame import landmark_flame
from albedogan.render import directional_sh_coeffs
from albedogan.render.cameras import ndc_to_pixels, pixels_to_ndc
from albedogan.structures import FaceEstimate, FlameParams


@pytest.fixture(scope="module")
def official_head(synthetic_data_dir):
    """The head read through the official FLAME 2020/2023 loaders (generic_model.pkl, landmark_embedding.npy, ...)."""
    from albedogan.assets.synthetic import ensure_synthetic_head
    from albedogan.flame.head import HeadModel

    p = ensure_synthetic_head(synthetic_data_dir)
    return HeadModel.from_files(p.model, p.landmark_embedding, p.uv_template, p.uv_face_mask, p.uv_face_eye_mask,
                                n_shape=300, n_exp=50)


def _params(head, n: int, seed: int, scale: float = 1.0) -> FlameParams:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return FlameParams(scale * 0.5 * r(n, head.n_shape), scale * 0.5 * r(n, head.n_exp),
                       scale * torch.tensor([0.1, 0.4, 0.2]) * r(n, 3), scale * 0.05 * r(n, 3),
                       scale * torch.tensor([0.1, 0.0, 0.0]) * r(n, 3).abs(), torch.zeros(n, 6))


def test_landmark_flame_is_exact(official_head):
    reduced = landmark_flame(official_head.flame)
    assert reduced.n_vertices < official_head.flame.n_vertices / 4
    p = _params(official_head, 3, seed=0)
    full, small = official_head.flame(p), reduced(p)
    for name in ("landmarks2d", "landmarks3d", "joints"):
        assert torch.allclose(getattr(full, name), getattr(small, name), atol=1e-6), name


def test_packed_adam_is_torch_adam_with_one_group_per_tensor():
    """PackedAdam (one flat leaf, per-column learning rates) takes the same steps as torch.optim.Adam with one
    parameter group per tensor, on tensors of different shapes; values() carries gradients to the leaf."""
    from albedogan.fitting.optim import PackedAdam

    g = torch.Generator().manual_seed(0)
    start = {"a": torch.randn(4, 3, generator=g, dtype=torch.float64),
             "b": torch.randn(4, 9, 3, generator=g, dtype=torch.float64)}
    lr = {"a": 0.01, "b": 0.05}
    packed = PackedAdam(start, lr)
    leaves = {k: v.clone().requires_grad_(True) for k, v in start.items()}
    reference = torch.optim.Adam([{"params": [leaves[k]], "lr": lr[k]} for k in start])

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (3 * a.sin()).pow(2).sum() + (b * b.cos()).sum() + (a.sum(1)[:, None, None] * b).sum()

    for _ in range(50):
        values = packed.values()
        loss(values["a"], values["b"]).backward()
        packed.step()
        reference.zero_grad()
        loss(leaves["a"], leaves["b"]).backward()
        reference.step()
    for k, v in packed.values().items():
        assert v.shape == start[k].shape and torch.allclose(v, leaves[k], atol=1e-12), k
    assert not torch.equal(packed.values()["a"], start["a"])
    with pytest.raises(ValueError, match="no learning rate"):
        PackedAdam(start, {"a": 0.1})


def _layout(mouth_open: float = 3.0) -> torch.Tensor:
    """A synthetic (1, 68, 2) iBUG layout in the pixels of a 64 px image; ``mouth_open`` = inner-lip half height."""
    t = torch.linspace(0, math.pi, 17)
    contour = torch.stack([32 - 24 * torch.cos(t), 28 + 26 * torch.sin(t)], -1)
    brows = torch.stack([torch.linspace(12, 52, 10), torch.full((10,), 18.0)], -1)
    nose = torch.stack([torch.full((9,), 32.0), torch.linspace(24, 40, 9)], -1)
    ang = torch.linspace(0, 2 * math.pi, 7)[:-1]
    eye = lambda cx: torch.stack([cx + 5 * torch.cos(ang), 26 + 2 * torch.sin(ang)], -1)  # noqa: E731
    ang12, ang8 = torch.linspace(0, 2 * math.pi, 13)[:-1], torch.linspace(0, 2 * math.pi, 9)[:-1]
    mouth = torch.stack([32 + 10 * torch.cos(ang12), 46 + 4 * torch.sin(ang12)], -1)
    inner = torch.stack([32 + 7 * torch.cos(ang8), 46 + mouth_open * torch.sin(ang8)], -1)
    return torch.cat([contour, brows, nose, eye(22.0), eye(42.0), mouth, inner])[None]


def test_mouth_opening_mask_and_interior_colour():
    """The inner-lip polygon is the mouth opening; the interior colour is the photo's mean there, and for a closed
    mouth the colour along the lip seam."""
    from albedogan.fitting.masks import inner_mouth_mask_from_landmarks
    from albedogan.inference.reconstruct import mouth_interior_colour

    lmk = _layout(3.0)
    mask = inner_mouth_mask_from_landmarks(lmk, 64)
    assert mask.shape == (1, 1, 64, 64) and 40 < mask.sum() < 90  # ellipse 7 x 3 px: ~66 px
    assert mask[0, 0, 46, 32] == 1 and mask[0, 0, 40, 32] == 0
    image = torch.full((1, 3, 64, 64), 0.8)
    image[:, :, 42:51] = torch.tensor([0.9, 0.9, 0.85])[None, :, None, None]  # teeth in the mouth's rows
    colour = mouth_interior_colour(image, pixels_to_ndc(lmk, 64))
    torch.testing.assert_close(colour, torch.tensor([[0.9, 0.9, 0.85]]))
    closed = _layout(0.0)
    assert inner_mouth_mask_from_landmarks(closed, 64).sum(2).max() <= 1  # a line: the seam, one pixel high
    image[:, :, 45:48] = torch.tensor([0.3, 0.1, 0.1])[None, :, None, None]  # the dark seam between closed lips
    torch.testing.assert_close(mouth_interior_colour(image, pixels_to_ndc(closed, 64)),
                               torch.tensor([[0.3, 0.1, 0.1]]), atol=0.02, rtol=0)


def test_skin_mask_excludes_eyes_and_mouth():
    lmk = _layout()
    assert lmk.shape == (1, 68, 2)
    mask = skin_mask_from_landmarks(lmk, 64)
    assert mask.shape == (1, 1, 64, 64)
    assert mask[0, 0, 26, 22] == 0 and mask[0, 0, 26, 42] == 0 and mask[0, 0, 46, 32] == 0  # eyes, inner mouth
    assert mask[0, 0, 36, 20] == 1 and mask[0, 0, 36, 44] == 1  # cheeks
    assert mask[0, 0, 2, 2] == 0 and mask[0, 0, 60, 60] == 0  # outside the hull


def test_solve_camera_recovers_a_camera(official_head):
    p = _params(official_head, 2, seed=1)
    pts = official_head(p).landmarks2d
    cam = torch.tensor([[7.5, 0.01, -0.02], [6.0, -0.015, 0.005]])
    from albedogan.render.cameras import weak_perspective_project

    target = weak_perspective_project(pts, cam)[..., :2]
    assert torch.allclose(FaceFitter.solve_camera(pts, target), cam, atol=1e-4)


def test_landmark_crop_straightens_and_maps_back():
    pts = torch.rand(2, 68, 2) * 40 + 80
    pts[:, 36:42] = torch.tensor([100.0, 100.0])
    pts[:, 42:48] = torch.tensor([140.0, 120.0])  # eye line rolled by atan(20/40)
    m = landmark_crop_matrices(pts, 128)
    crop = pts @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
    d = crop[:, 42] - crop[:, 36]
    assert torch.allclose(d[:, 1], torch.zeros(2), atol=1e-4) and (d[:, 0] > 0).all()
    assert crop.min() >= 0 and crop.max() <= 127
    back = (crop - m[:, None, :, 2]) @ torch.linalg.inv(m[:, :, :2]).transpose(1, 2)
    assert torch.allclose(back, pts, atol=1e-3)


def _fit_config(photometric: bool = True) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load("conf/fit/photometric.yaml"))
    cfg["stages"][0]["iters"] = 40
    cfg["stages"][1]["iters"] = 4 if photometric else 0
    return cfg


@pytest.mark.parametrize("photometric", [False, True])
def test_fitter_recovers_landmarks_pose_and_light_batched(official_head, photometric):
    """Two faces rendered with known parameters (FLAME 2020/2023-format files); the fitter starts from the mean face
    and ends close to the true landmarks and pose; with the photometric stage the light loses its wrong colour."""
    head = official_head
    truth_p = _params(head, 2, seed=3)
    cam = torch.tensor([[7.0, 0.0, 0.01], [6.5, 0.01, 0.0]])
    light = directional_sh_coeffs(torch.tensor([[0.7, 0.2, 0.7], [-0.7, 0.1, 0.7]]), 0.6, 0.4)
    fitter = FaceFitter(head, **_fit_config(photometric))
    from albedogan.render.cameras import WeakPerspectiveCamera

    out = head(truth_p)
    target = WeakPerspectiveCamera(cam).transform_points(out.landmarks2d)[..., :2]
    albedo = torch.tensor([0.7, 0.5, 0.4]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    image = fitter.renderer.render_world(out.vertices, WeakPerspectiveCamera(cam), albedo, light).image.clamp(0, 1)
    start_light = light.mean(-1, keepdim=True).expand(2, 9, 3).clone()
    start_light[:, 0, 2] += 0.8  # a blue cast the photometric stage must remove
    start = FaceEstimate(head.zero_params(2), torch.tensor([[5.0, 0.0, 0.0]] * 2), start_light)
    result = fitter(image, target, start)
    err0 = (fitter._project(start.params, FaceFitter.solve_camera(head(start.params).landmarks2d, target), False)[1]
            - target).norm(dim=-1).mean()
    err = (result.landmarks - target).norm(dim=-1).mean()
    assert result.landmarks.shape == (2, 68, 2) and result.estimate.cam.shape == (2, 3)
    assert err < 0.25 * err0 and err < 0.015  # NDC; the start is ~0.08
    assert torch.isfinite(result.estimate.light).all()
    if photometric:
        blue = lambda sh: (sh[:, 0, 2] - sh[:, 0, :2].mean(-1)).abs().mean()  # noqa: E731
        assert blue(result.estimate.light) < 0.8 * blue(start_light)
        assert "photometric/photometric" in result.losses


def test_fit_stage_rejects_unknown_parameters(official_head):
    with pytest.raises(ValueError, match="unknown parameters"):
        FitStage("x", 1, {"albedo_map": 0.1})
    with pytest.raises(ValueError, match="unknown keys"):
        FaceFitter(official_head, weights={"landmark": 1.0})


def test_crop_estimate_maps_back_to_the_source_frame(official_head):
    """A fit in a rolled crop, moved to the source frame, projects onto the same source pixels."""
    head = official_head
    p = _params(head, 2, seed=5)
    cam = torch.tensor([[7.0, 0.0, 0.0], [6.0, 0.01, 0.02]])
    from albedogan.render.cameras import WeakPerspectiveCamera

    src_px = ndc_to_pixels(WeakPerspectiveCamera(cam).transform_points(head(p).landmarks2d)[..., :2], 128)
    m = landmark_crop_matrices(src_px + torch.tensor([0.0, 0.0]), 224)
    crop_px = src_px @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
    crop_target = pixels_to_ndc(crop_px, 224)
    fitter = FaceFitter(head, **_fit_config(False))
    fitted = fitter(torch.zeros(2, 3, 224, 224), crop_target, FaceEstimate(p, cam, torch.zeros(2, 9, 3)))
    src = crop_estimate_to_source(fitted.estimate, head, m, 224, 128)
    back = ndc_to_pixels(WeakPerspectiveCamera(src.cam).transform_points(head(src.params).landmarks2d)[..., :2], 128)
    assert (back - src_px).norm(dim=-1).mean() < 0.5  # pixels
    img = warp_affine(torch.rand(2, 3, 128, 128), m, (224, 224))
    assert img.shape == (2, 3, 224, 224)
