"""``python infer.py mode=reconstruct input=<file | folder | glob>``: photos → fitted, textured FLAME meshes.

Per input: load (EXIF rotation applied, grayscale/CMYK/alpha converted, huge photos downscaled, decompression bombs
refused) → detect faces (YuNet by default, insightface SCRFD when its pack exists) upright and rotated by
``rotations`` (90/180/270°): the best-scoring orientation is used and recorded (:func:`find_faces`) → keep the
largest face (``faces=largest``) or every face by decreasing size (``faces=all``, at most ``max_faces``), skipping
faces smaller than ``min_face_size`` → 68 landmarks on each face (``landmarks`` group: dlib's predictor on the
YuNet face) → roll-straightened, consistently scaled DECA crop from the landmarks
(:func:`~albedogan.datamodules.alignment.landmark_crop`) → estimator on the crops (batched) →
:class:`~albedogan.fitting.FaceFitter` (``fit`` group: landmarks with the dynamic contour, eye/lip terms,
photometric skin L1 with robust weights, priors) → albedo:

* the crop unwrapped into UV space through the fit and **de-lit** by the fitted SH shading (clamped), mirror-
  completed by visibility, the rest filled with the mean of the visible skin
  (:class:`~albedogan.models.targets.AlbedoTargetBuilder`);
* with a StyleGAN2 teacher and a G_A: G_A(w) on a latent found by inversion (LPIPS + L2 against the crop), blended
  with the de-lit texture where that was seen (``invert.blend``).

``render.png`` is that albedo under the fitted light (light applied once). Outputs per face (``<out>/<stem>/``, or
``<out>/<stem>/face_<k>/`` with ``faces=all``): the exports of :func:`~albedogan.inference.generate.write_face`,
``crop.png``, ``overlay.png`` (render over the crop, detected landmarks red, fitted green) and ``landmarks.json``:
``detected_68``, ``fitted_68``, ``detected_5`` (YuNet), ``box``, in original-photo pixels (x right, y down, pixel
centres at integers), ``roll_deg``, ``yaw_deg``, ``rotation``, ``nme_68`` (mean fitted-vs-detected distance / the
detected inter-ocular distance), ``nme_5`` and ``quality`` (``ok``, ``poor_fit`` above ``poor_fit_nme``,
``profile`` beyond ``profile_yaw_deg``, ``no_landmarks``). A fit whose NME exceeds ``fail_nme`` (or is not finite)
makes the input ``failed`` with reason ``fit_failed``. Per run: ``summary.json``, ``contact_sheet.png`` (crop |
overlay | render | albedo per face) and a rich table with quality and NME; a warning line lists poor fits. Bad inputs
never stop the batch; the mode returns exit status 1 when any input was skipped or failed, else 0.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from albedogan.datamodules.alignment import AlignedCrop, invert_affine, landmark_crop, transform_points
from albedogan.datamodules.detection import FaceDetection, build_face_detector
from albedogan.datamodules.images import ImageLoadError, iter_image_paths, load_image, to_tensor
from albedogan.datamodules.landmarks import (
    LandmarkDetector,
    build_landmark_detector,
    five_from_68,
    roll_degrees,
)
from albedogan.fitting import FaceFitter, FitResult
from albedogan.fitting.masks import inner_mouth_mask_from_landmarks
from albedogan.flame.landmarks import contour_yaw_degrees
from albedogan.inference.export import save_png, texture_to_uint8
from albedogan.inference.generate import write_face
from albedogan.inference.pipeline import FacePipeline, FaceResult
from albedogan.render.cameras import ndc_to_pixels, pixels_to_ndc
from albedogan.render.uv import resize_uv
from albedogan.structures import FaceEstimate
from albedogan.utils.io import atomic_write_text
from albedogan.utils.logging import get_logger

__all__ = [
    "FaceNotFoundError",
    "FoundFaces",
    "Outcome",
    "differentiable_synthesis",
    "find_faces",
    "fit_photo",
    "invert_latent",
    "mouth_interior_colour",
    "noise_regularization",
    "overlay_fit",
    "rotate_image",
    "run_reconstruct",
]

log = get_logger(__name__)

FIVE_POINT_CROP_SCALE = 2.2
"""The five points span about half the face of the 68: their DECA crop is this much larger (``landmarks=yunet5``,
``none``)."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one input.

    Attributes:
        input: the input path.
        status: ``"ok"``, ``"skipped"`` (a bad input: reason says why) or ``"failed"`` (an error while processing).
        reason: ``""`` when ok; else e.g. ``not_an_image``, ``truncated``, ``too_large``, ``empty``, ``unreadable``,
            ``no_face``, ``tiny_face``, ``error``.
        detail: human-readable detail (faces found, box size, albedo source, exception text).
        output: output folder ("" when nothing was written).
        rotation: degrees (counter-clockwise) the photo was rotated by before its faces were found (0 = upright).
        faces: one record per reconstructed face (``folder``, ``quality``, ``nme_68``, ``roll_deg``, ...; the
            fields of its ``landmarks.json`` without the point lists).
        seconds: wall time of this input (loading to writing).
    """

    input: str
    status: str
    reason: str = ""
    detail: str = ""
    output: str = ""
    rotation: int = 0
    faces: list = field(default_factory=list)
    seconds: float = 0.0


def differentiable_synthesis(teacher: torch.nn.Module) -> Optional[Callable[..., torch.Tensor]]:
    """A differentiable ``(ws (N, num_ws, w_dim), noise=None) → image (N, 3, R, R) in [0, 1]`` for teachers that
    have one.

    A StyleGAN2-style teacher exposes ``generator.synthesis`` (NVIDIA naming, output in [-1, 1]); ``noise`` is its
    explicit per-layer noise list (None = the stored constant buffers). The returned callable carries
    ``noise_buffers`` (the constant buffers, or None when the network has no explicit noise inputs). The procedural
    teacher renders without gradients and has none: returns None.
    """
    synthesis = getattr(getattr(teacher, "generator", None), "synthesis", None)
    if synthesis is None:
        return None

    def synth(ws: torch.Tensor, noise: Optional[list[torch.Tensor]] = None) -> torch.Tensor:
        out = synthesis(ws, noise_mode="const") if noise is None else synthesis(ws, noise_mode="const", noise=noise)
        return ((out + 1) * 0.5).clamp(0, 1)

    synth.noise_buffers = getattr(synthesis, "noise_buffers", None)  # type: ignore[attr-defined]
    return synth


def noise_regularization(noise: list[torch.Tensor]) -> torch.Tensor:
    """NVlabs projector's noise regulariser: squared autocorrelation of each (N, 1, r, r) map at shifts of one pixel
    (both axes, wrapping), summed over a pyramid of 2x average-pooled versions down to 8 x 8."""
    reg = noise[0].new_zeros(())
    for n in noise:
        while True:
            reg = reg + (n * torch.roll(n, 1, dims=3)).mean() ** 2 + (n * torch.roll(n, 1, dims=2)).mean() ** 2
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg


def invert_latent(
    synthesis: Callable[..., torch.Tensor],
    target: torch.Tensor,
    w_init: torch.Tensor,
    steps: int = 100,
    lr: float = 0.05,
    perceptual: Optional[torch.nn.Module] = None,
    lpips_weight: float = 1.0,
    l2_weight: float = 1.0,
    mask: Optional[torch.Tensor] = None,
    noise_init: Optional[list[torch.Tensor]] = None,
    noise_weight: float = 1e5,
) -> tuple[torch.Tensor, list[float]]:
    """Optimisation-based GAN inversion in W+ (Adam on the latent; the generator stays frozen), NVlabs projector
    style: with ``noise_init`` the per-layer noise maps are optimised too, regularised by
    :func:`noise_regularization` and re-normalised to zero mean / unit variance after every step.

    Loss per step: ``lpips_weight · LPIPS(I(w), target) + l2_weight · mean((I(w) − target)² · mask)``
    (``+ noise_weight · noise_regularization``), with the synthesised image resized (bilinear, antialiased) to the
    target size.

    Args:
        synthesis: differentiable ``(ws, noise=None)`` → (N, 3, R, R) in [0, 1] (:func:`differentiable_synthesis`).
        target: (N, 3, H, W) float [0, 1] images to match.
        w_init: (N, num_ws, w_dim) start (e.g. the mean w broadcast).
        steps: Adam steps (0 returns ``w_init``).
        lr: Adam learning rate.
        perceptual: LPIPS-style distance ((N, 3, H, W) pairs in [0, 1] → (N,)), or None to use L2 only.
        lpips_weight, l2_weight: loss weights.
        mask: optional (N, 1, H, W) weights of the L2 term (e.g. the face region).
        noise_init: optional per-layer noise maps (each broadcastable to (N, 1, r, r)) to optimise; None = fixed.
        noise_weight: weight of the noise regulariser (NVlabs: 1e5).

    Returns:
        (ws (N, num_ws, w_dim) detached, losses per step).
    """
    w = w_init.detach().clone().requires_grad_(True)
    n = w.shape[0]
    noise = None if noise_init is None else [t.detach().to(w).expand(n, 1, *t.shape[-2:]).clone().requires_grad_(True)
                                             for t in noise_init]
    opt = torch.optim.Adam([w] + (noise or []), lr=lr, betas=(0.9, 0.999))
    losses: list[float] = []
    size = target.shape[-2:]
    for _ in range(int(steps)):
        with torch.enable_grad():
            img = synthesis(w) if noise is None else synthesis(w, noise=noise)
            if img.shape[-2:] != size:
                img = F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)
            sq = (img - target) ** 2
            loss = l2_weight * (sq * mask).mean() if mask is not None else l2_weight * sq.mean()
            if perceptual is not None and lpips_weight > 0:
                loss = loss + lpips_weight * perceptual(img, target).mean()
            if noise is not None and noise_weight > 0:
                loss = loss + noise_weight * noise_regularization(noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        if noise is not None:
            with torch.no_grad():
                for t in noise:
                    t.sub_(t.mean((2, 3), keepdim=True)).div_(t.square().mean((2, 3), keepdim=True).sqrt() + 1e-8)
        losses.append(float(loss.detach()))
    return w.detach(), losses


def overlay_fit(image: torch.Tensor, render: torch.Tensor, alpha: torch.Tensor, landmarks: torch.Tensor,
                opacity: float = 0.8, targets: Optional[torch.Tensor] = None) -> np.ndarray:
    """The fit drawn over its image.

    Args:
        image: (3, H, W) float [0, 1].
        render: (3, h, w) float [0, 1] render of the fit in the same framing (resized to H, W).
        alpha: (1, h, w) render coverage.
        landmarks: (L, 2) image-NDC landmarks (x right, y down, [-1, 1] spans the image).
        opacity: render opacity over the image.
        targets: optional (K, 2) image-NDC detected landmarks, drawn as red 3×3 dots under the fitted ones.

    Returns:
        (H, W, 3) uint8 RGB with the landmarks as green 3×3 dots.
    """
    h, w = image.shape[-2:]
    rend = F.interpolate(render[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    a = F.interpolate(alpha[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0] * opacity
    comp = image.float() * (1 - a) + rend * a
    out = texture_to_uint8(comp).copy()
    dy, dx = torch.meshgrid(torch.arange(-1, 2), torch.arange(-1, 2), indexing="ij")
    for points, colour in ((targets, (230, 40, 40)), (landmarks, (40, 220, 60))):
        if points is None:
            continue
        px = ((points[:, 0].float().cpu() + 1) * 0.5 * w - 0.5).round().long()
        py = ((points[:, 1].float().cpu() + 1) * 0.5 * h - 0.5).round().long()
        xs = (px[:, None] + dx.reshape(1, -1)).clamp(0, w - 1).reshape(-1).numpy()
        ys = (py[:, None] + dy.reshape(1, -1)).clamp(0, h - 1).reshape(-1).numpy()
        out[ys, xs] = colour
    return out


class FaceNotFoundError(ValueError):
    """No usable face in a photo; ``reason`` is ``"no_face"`` or ``"tiny_face"``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def rotate_image(image: np.ndarray, degrees: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an (H, W, C) image counter-clockwise by a multiple of 90°.

    Returns:
        ``(rotated, matrix)``: the rotated image and the (2, 3) float64 matrix mapping rotated-image pixel
        coordinates back to the input's (pixel centres at integers).
    """
    if degrees % 90:
        raise ValueError(f"rotations must be multiples of 90 degrees, got {degrees}")
    k = (degrees // 90) % 4
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    h, w = image.shape[:2]
    for _ in range(k):  # one counter-clockwise quarter turn: new (x, y) came from old (w - 1 - y, x)
        step = np.array([[0.0, -1.0, w - 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = matrix @ step
        h, w = w, h
    return np.ascontiguousarray(np.rot90(image, k=k)), matrix


@dataclass(frozen=True)
class FoundFaces:
    """The faces kept in one photo.

    Attributes:
        image: (H, W, 3) uint8 the photo, rotated by ``rotation`` (the frame of ``detections``).
        rotation: degrees counter-clockwise the photo was rotated (0 when faces were found upright).
        to_photo: (2, 3) float64 matrix ``image`` pixels → original photo pixels.
        detections: kept faces by decreasing box area.
        n_faces: faces the detector found (before ``faces``/``max_faces``/size filtering).
    """

    image: np.ndarray
    rotation: int
    to_photo: np.ndarray
    detections: list
    n_faces: int


def find_faces(image: np.ndarray, face_detector, rotations: Sequence[int] = (90, 180, 270), faces: str = "largest",
               max_faces: int = 10, min_face_size: int = 24) -> FoundFaces:
    """Find the photo's orientation and its faces; keep the largest face or all (by size).

    YuNet also fires on sideways faces, with upright-looking (wrong) five points and a lower score, so the photo is
    detected upright and in every rotation of ``rotations``: the orientation whose best face scores highest wins
    (upright unless another beats it by ``0.02``). ``rotations=[]`` keeps photos upright.

    Raises:
        FaceNotFoundError: no face in any orientation (``no_face``) or every found face is smaller than
            ``min_face_size`` pixels (``tiny_face``).
    """
    if faces not in ("largest", "all"):
        raise ValueError(f"mode.faces must be 'largest' or 'all', got {faces!r}")
    found, best = None, -1.0
    for rotation in dict.fromkeys([0, *[int(r) % 360 for r in rotations]]):
        rotated, to_photo = rotate_image(image, rotation) if rotation else (image, np.eye(2, 3))
        detections = face_detector.detect(rotated)
        score = max((d.score for d in detections), default=-1.0) - (0.0 if rotation == 0 else 0.02)
        if detections and score > best:
            found, best = (rotation, rotated, to_photo, detections), score
    if found is not None and found[3]:
        rotation, rotated, to_photo, detections = found
        by_size = sorted(detections, key=lambda d: -d.width * d.height)
        kept = [d for d in by_size if min(d.width, d.height) >= min_face_size]
        if not kept:
            big = by_size[0]
            raise FaceNotFoundError(
                "tiny_face", f"largest face {big.width:.0f}x{big.height:.0f} px < min_face_size={min_face_size}")
        kept = kept[:1] if faces == "largest" else kept[:max(1, int(max_faces))]
        return FoundFaces(rotated, rotation, to_photo, kept, len(detections))
    tried = "upright" + (f" and rotated by {list(rotations)}" if rotations else "")
    raise FaceNotFoundError("no_face", f"no face found in {image.shape[1]}x{image.shape[0]} image ({tried})")


@dataclass(frozen=True)
class _FaceCrops:
    crops: list  # AlignedCrop per face (rotated-image pixels -> crop pixels)
    images: torch.Tensor  # (F, 3, S, S) [0, 1]
    detected: list  # (68|5, 2) float64 landmarks per face in rotated-image pixels, or None
    targets: Optional[torch.Tensor]  # (F, L, 2) crop image-NDC fitting targets, or None


def _crop_faces(found: FoundFaces, landmark_detector: Optional[LandmarkDetector], crop_size: int, crop_scale: float,
                device: torch.device) -> _FaceCrops:
    crops, detected = [], []
    for det in found.detections:  # a handful of faces
        pts = landmark_detector.landmarks(found.image, det) if landmark_detector is not None else None
        basis = pts if pts is not None and pts.shape[0] == 68 else det.landmarks5
        scale = crop_scale if basis.shape[0] == 68 else crop_scale * FIVE_POINT_CROP_SCALE
        crops.append(landmark_crop(found.image, basis, size=crop_size, scale=scale))
        detected.append(pts)
    images = torch.stack([to_tensor(c.image) for c in crops]).to(device)
    targets = None
    if all(p is not None for p in detected):
        px = np.stack([c.to_crop(p) for c, p in zip(crops, detected)])
        targets = pixels_to_ndc(torch.as_tensor(px, dtype=images.dtype, device=device), crop_size)
    return _FaceCrops(crops, images, detected, targets)


def _face_record(found: FoundFaces, det: FaceDetection, crop: AlignedCrop, detected: Optional[np.ndarray],
                 fitted_ndc: torch.Tensor, estimate: FaceEstimate, crop_size: int, poor_fit_nme: float,
                 profile_yaw_deg: float) -> dict[str, Any]:
    """The ``landmarks.json`` record of one face (points in original-photo pixels)."""
    to_photo = lambda p: transform_points(np.asarray(p, dtype=np.float64), found.to_photo)  # noqa: E731
    fitted = to_photo(crop.to_source(ndc_to_pixels(fitted_ndc.detach().cpu().double(), crop_size).numpy()))
    corners = to_photo(np.array([[det.box[0], det.box[1]], [det.box[2], det.box[1]], [det.box[0], det.box[3]],
                                 [det.box[2], det.box[3]]]))
    box = [float(corners[:, 0].min()), float(corners[:, 1].min()), float(corners[:, 0].max()),
           float(corners[:, 1].max())]
    five = to_photo(det.landmarks5)
    yaw = float(contour_yaw_degrees(estimate.params.global_pose, estimate.params.neck_pose)[0])
    record: dict[str, Any] = {"box": box, "detected_5": five.tolist(), "rotation": found.rotation,
                              "yaw_deg": yaw, "detected_68": None, "fitted_68": fitted.tolist()}
    points = five
    nme_68 = nme_5 = None
    iod = float(np.linalg.norm(five[1] - five[0]))
    if detected is not None and detected.shape[0] == 68:
        d68 = to_photo(detected)
        points = d68
        record["detected_68"] = d68.tolist()
        iod = float(np.linalg.norm(d68[42:48].mean(0) - d68[36:42].mean(0)))
        nme_68 = float(np.linalg.norm(fitted - d68, axis=1).mean() / max(iod, 1e-6))
        record["nme_68_detector_5"] = float(np.linalg.norm(five_from_68(d68) - five, axis=1).mean() / max(iod, 1e-6))
    nme_5 = float(np.linalg.norm(five_from_68(fitted) - five, axis=1).mean() / max(iod, 1e-6))
    record.update({"roll_deg": roll_degrees(points), "iod_px": iod, "nme_68": nme_68, "nme_5": nme_5})
    if detected is None:
        quality = "no_landmarks"
    elif abs(yaw) > profile_yaw_deg:
        quality = "profile"
    elif nme_68 is not None and nme_68 > poor_fit_nme:
        quality = "poor_fit"
    else:
        quality = "ok"
    record["quality"] = quality
    return record


def _unique_folder(out: Path, stem: str, used: set[str]) -> Path:
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return out / name


def _print_summary(outcomes: list[Outcome], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"reconstruct: {sum(o.status == 'ok' for o in outcomes)}/{len(outcomes)} ok -> {out}")
    for col in ("input", "status", "reason", "faces", "quality", "NME68", "detail"):
        table.add_column(col)
    colour = {"ok": "green", "skipped": "yellow", "failed": "red"}
    for o in outcomes:
        nmes = [f["nme_68"] for f in o.faces if f.get("nme_68") is not None]
        table.add_row(o.input, f"[{colour[o.status]}]{o.status}[/]", o.reason, str(len(o.faces)),
                      ",".join(sorted({f["quality"] for f in o.faces})), f"{max(nmes):.3f}" if nmes else "-",
                      o.detail)
    Console(stderr=True, width=180).print(table)


def build_fitter(fit: Any, head) -> FaceFitter:
    """A :class:`FaceFitter` for ``head`` from the ``fit`` group's settings (a fitter is returned as is)."""
    if isinstance(fit, FaceFitter):
        return fit
    cfg = dict(fit or {})
    cfg.pop("_target_", None)
    return FaceFitter(head, **cfg)


@torch.no_grad()
def run_reconstruct(
    pipeline: FacePipeline,
    input: str | os.PathLike | list,  # noqa: A002 - the CLI key is `input`
    out: str | os.PathLike,
    detector: str = "auto",
    detector_model_root: Optional[str] = None,
    score_threshold: Optional[float] = None,
    landmarks: LandmarkDetector | str | None = "dlib68",
    fit: Optional[Mapping[str, Any] | FaceFitter] = None,
    faces: str = "largest",
    max_faces: int = 10,
    rotations: Sequence[int] = (90, 180, 270),
    poor_fit_nme: float = 0.08,
    fail_nme: float = 0.35,
    profile_yaw_deg: float = 55.0,
    min_face_size: int = 24,
    max_pixels: Optional[int] = 100_000_000,
    max_side: Optional[int] = 2048,
    crop_size: int = 224,
    crop_scale: float = 1.25,
    delight_min_shading: float = 0.3,
    invert: Optional[dict[str, Any]] = None,
    perceptual: str = "auto",
    uv_resolution: Optional[int] = None,
    glb: bool = True,
    contact_sheet_rows: int = 24,
    recursive: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> int:
    """Reconstruct every face photo in ``input`` (see module docstring); returns the exit status.

    Args:
        pipeline: the built pipeline (its estimator is required: photos have no ground truth).
        input: a file, a folder (recursive when ``recursive``), a glob, or a list of those.
        out: output folder.
        detector: ``auto`` | ``yunet`` | ``insightface`` (:func:`build_face_detector`).
        detector_model_root: insightface model-pack folder (None = its default).
        score_threshold: detector confidence threshold (None = the detector's default).
        landmarks: a landmark detector (the ``landmarks`` group), or ``dlib68`` | ``yunet5`` | ``none``.
        fit: :class:`FaceFitter` keyword arguments (the ``fit`` group: stages, weights, render size) or a fitter;
            None = the stages of ``conf/fit/photometric.yaml`` are not known here, so no fitting.
        faces: ``largest`` (one face per photo) or ``all`` (one folder per face, by decreasing size).
        max_faces: cap with ``faces=all``.
        rotations: rotations (degrees, counter-clockwise) also tried; the best-scoring orientation wins.
        poor_fit_nme: ``quality=poor_fit`` above this NME (fitted vs detected 68, / inter-ocular distance).
        fail_nme: an input whose fit is worse than this (or not finite) is ``failed`` / ``fit_failed``.
        profile_yaw_deg: ``quality=profile`` beyond this fitted yaw (degrees).
        min_face_size: skip faces whose box is smaller than this (pixels of the loaded image, after ``max_side``).
        max_pixels: refuse images whose header declares more pixels (decompression-bomb guard); None = off.
        max_side: downscale larger photos so max(H, W) <= max_side before detection; None = keep.
        crop_size: side of the roll-straightened crop given to the estimator and the fitter (pixels).
        crop_scale: DECA's landmark-crop scale (side = scale x 1.1 x the landmarks' mean bbox side).
        delight_min_shading: lower clamp of the fitted shading the texture is divided by.
        invert: ``{"enabled", "steps", "lr", "lpips_weight", "l2_weight", "blend", "optimize_noise",
            "noise_weight"}`` for the latent inversion (only with a differentiable teacher and a G_A); ``blend`` mixes
            the de-lit texture in where it was seen; ``optimize_noise`` also fits the noise maps (NVlabs projector).
        perceptual: ``auto`` | ``lpips`` | ``stlpips`` for the inversion's LPIPS term.
        uv_resolution: albedo resolution of the exports (None = as produced).
        glb: also write GLB files.
        contact_sheet_rows: faces shown in the run's ``contact_sheet.png`` (0 = none).
        recursive: descend into sub-folders of a folder input.
        seed: the run's seed (recorded; fitting and inversion are deterministic).
        device: moves the pipeline (None = leave it).

    Returns:
        0 when every input was reconstructed, 1 otherwise.
    """
    from albedogan.models.targets import AlbedoTargetBuilder

    if device is not None:
        pipeline = pipeline.to(device)
    if pipeline.estimator is None:
        raise ValueError("reconstruct needs an estimator (photos have no ground truth): set estimator=embedded "
                         "or estimator=deca_mica")
    if faces not in ("largest", "all"):
        raise ValueError(f"mode.faces must be 'largest' or 'all', got {faces!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = iter_image_paths(input, recursive=recursive) if not isinstance(input, (list, tuple)) else \
        iter_image_paths([str(p) for p in input], recursive=recursive)
    face_detector = build_face_detector(detector, model_root=detector_model_root, score_threshold=score_threshold)
    lmk_detector = build_landmark_detector(landmarks) if isinstance(landmarks, str) else landmarks
    fitter = build_fitter(fit, pipeline.head).to(pipeline.device)
    inv = {"enabled": True, "steps": 100, "lr": 0.05, "lpips_weight": 1.0, "l2_weight": 1.0, "blend": True,
           "optimize_noise": True, "noise_weight": 1e5, **dict(invert or {})}
    synth = differentiable_synthesis(pipeline.teacher) if pipeline.albedo_generator is not None else None
    use_inversion = bool(inv["enabled"]) and synth is not None
    lpips = None
    if use_inversion and float(inv["lpips_weight"]) > 0:
        from albedogan.assets.convert.lpips import build_perceptual

        lpips = build_perceptual(perceptual).to(pipeline.device)
    albedo_source = "G_A(inverted w)" + (" + de-lit texture" if inv["blend"] else "") if use_inversion \
        else "de-lit unwrapped+mirror"
    builder = AlbedoTargetBuilder(pipeline.head, uv_resolution=int(uv_resolution or pipeline.texture_builder.
                                                                   resolution[0]),
                                  delight=True, delight_min_shading=delight_min_shading, region="face_eye",
                                  fill="mean").to(pipeline.device)
    ctx = _RunContext(pipeline, face_detector, lmk_detector, fitter, builder, out, set(), faces, max_faces,
                      tuple(rotations or ()), poor_fit_nme, fail_nme, profile_yaw_deg, min_face_size, max_pixels,
                      max_side, crop_size, crop_scale, synth if use_inversion else None, inv, lpips, uv_resolution,
                      glb, albedo_source, [])
    outcomes: list[Outcome] = []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as progress:
        task = progress.add_task("reconstruct", total=len(paths))
        for path in paths:
            outcomes.append(_reconstruct_one(path, ctx))
            progress.advance(task)
    if contact_sheet_rows > 0 and ctx.sheet:
        from albedogan.inference.contact_sheet import save_contact_sheet

        rows = ctx.sheet[:int(contact_sheet_rows)]
        columns = [torch.stack([r[c] for r in rows]) for c in range(4)]
        save_contact_sheet(out / "contact_sheet.png", columns, ["photo", "fit (red: detected)", "render", "albedo"])
    atomic_write_text(out / "summary.json", json.dumps(
        {"outputs": str(out), "albedo_source": albedo_source, "seed": int(seed),
         "landmarks": type(lmk_detector).__name__ if lmk_detector is not None else None,
         "fit_stages": [s.name for s in fitter.stages], "inputs": [asdict(o) for o in outcomes]}, indent=2))
    _print_summary(outcomes, out)
    poor = [f"{o.input}[{f['folder']}] {f['quality']} (NME {f['nme_68']:.3f})" if f.get("nme_68") is not None
            else f"{o.input} {f['quality']}" for o in outcomes for f in o.faces if f["quality"] in ("poor_fit",
                                                                                                    "profile")]
    if poor:
        log.warning("reconstruct: %d face(s) fitted poorly: %s", len(poor), "; ".join(poor))
    n_ok = sum(o.status == "ok" for o in outcomes)
    log.info("reconstruct: %d/%d inputs ok -> %s (summary %s)", n_ok, len(outcomes), out, out / "summary.json")
    return 0 if n_ok == len(outcomes) else 1


@dataclass
class _RunContext:
    pipeline: FacePipeline
    face_detector: Any
    landmark_detector: Optional[LandmarkDetector]
    fitter: FaceFitter
    builder: Any
    out: Path
    used: set
    faces: str
    max_faces: int
    rotations: tuple
    poor_fit_nme: float
    fail_nme: float
    profile_yaw_deg: float
    min_face_size: int
    max_pixels: Optional[int]
    max_side: Optional[int]
    crop_size: int
    crop_scale: float
    synth: Any
    inv: dict
    lpips: Any
    uv_resolution: Optional[int]
    glb: bool
    albedo_source: str
    sheet: list


def fit_crops(pipeline: FacePipeline, fitter: FaceFitter, images: torch.Tensor, targets: Optional[torch.Tensor],
              landmarks5: torch.Tensor) -> tuple[FaceEstimate, Optional[FitResult]]:
    """Estimator on (F, 3, S, S) crops (5 points in crop pixels for its identity crop), then the fitter against
    ``targets`` ((F, 68|5, 2) crop NDC; None = no fitting). Returns the final estimate and the fit (or None)."""
    estimate = pipeline.estimator(images, landmarks5=landmarks5)
    if targets is None or not fitter.stages:
        return estimate, None
    result = fitter(images, targets, estimate)
    return result.estimate, result


def mouth_interior_colour(images: torch.Tensor, landmarks: torch.Tensor, min_area: float = 4.0) -> torch.Tensor:
    """What the photo shows between the lips, for the inside of the head the render sees through parted lips.

    Args:
        images: (N, 3, S, S) float [0, 1] crops.
        landmarks: (N, 68, 2) detected landmarks in the crops' image NDC.
        min_area: pixels the inner-lip polygon (60-67) must cover to be averaged; a closed mouth takes the mean
            colour along the inner lip line (the dark seam between the lips) instead.

    Returns:
        (N, 3) colours in [0, 1].
    """
    size = images.shape[-1]
    mask = inner_mouth_mask_from_landmarks(ndc_to_pixels(landmarks, size), size).to(images.dtype)  # (N, 1, S, S)
    area = mask.sum((2, 3))  # (N, 1)
    opening = (images * mask).sum((2, 3)) / area.clamp_min(1.0)  # (N, 3)
    seam = F.grid_sample(images, landmarks[:, None, 60:68].to(images.dtype), mode="bilinear",
                         align_corners=False)[:, :, 0].mean(-1)  # (N, 3): image NDC is grid_sample's convention
    return torch.where(area >= min_area, opening, seam).clamp(0, 1)


@dataclass(frozen=True)
class PhotoFit:
    """The fit of the largest face of a photo (:func:`fit_photo`).

    Attributes:
        detection: the chosen face (box and 5 landmarks in the pixels of ``found.image``).
        crop: the roll-straightened crop (image + photo→crop matrix).
        crop_tensor: (1, 3, S, S) float [0, 1] crop on the pipeline's device.
        estimate: FLAME parameters, camera (crop NDC) and light (fitted when a fitter and landmarks were given).
        n_faces: number of faces the detector found.
        found: the orientation and detections (:class:`FoundFaces`).
    """

    detection: FaceDetection
    crop: AlignedCrop
    crop_tensor: torch.Tensor
    estimate: FaceEstimate
    n_faces: int
    found: FoundFaces


@torch.no_grad()
def fit_photo(image: np.ndarray, pipeline: FacePipeline, face_detector, min_face_size: int = 24,
              crop_size: int = 224, crop_scale: float = 1.25, landmark_detector: Optional[LandmarkDetector] = None,
              fitter: Optional[FaceFitter] = None, rotations: Sequence[int] = (90, 180, 270)) -> PhotoFit:
    """The largest face of an (H, W, 3) uint8 RGB photo: orientation, landmarks, crop, estimate (+ fit).

    Without a landmark detector the crop comes from the detector's five points and the estimate is not refined.

    Raises:
        FaceNotFoundError: no face, or the largest one is smaller than ``min_face_size`` pixels.
    """
    found = find_faces(image, face_detector, rotations, "largest", 1, min_face_size)
    fc = _crop_faces(found, landmark_detector, crop_size, crop_scale, pipeline.device)
    det, crop = found.detections[0], fc.crops[0]
    lmk5 = torch.as_tensor(crop.to_crop(det.landmarks5), dtype=fc.images.dtype, device=pipeline.device)[None]
    if fitter is None:
        estimate = pipeline.estimator(fc.images, landmarks5=lmk5)
    else:
        estimate, _ = fit_crops(pipeline, fitter, fc.images, fc.targets, lmk5)
    return PhotoFit(det, crop, fc.images, estimate, found.n_faces, found)


def _reconstruct_one(path: Path, ctx: _RunContext) -> Outcome:
    name = str(path)
    t0 = time.perf_counter()
    try:
        image = load_image(path, max_pixels=ctx.max_pixels, max_side=ctx.max_side)
    except ImageLoadError as err:
        return Outcome(name, "skipped", err.reason, str(err).split("): ", 1)[-1])
    try:
        try:
            found = find_faces(image, ctx.face_detector, ctx.rotations, ctx.faces, ctx.max_faces, ctx.min_face_size)
        except FaceNotFoundError as err:
            return Outcome(name, "skipped", err.reason, str(err))
        pipeline, s = ctx.pipeline, ctx.crop_size
        fc = _crop_faces(found, ctx.landmark_detector, s, ctx.crop_scale, pipeline.device)
        lmk5 = torch.as_tensor(np.stack([c.to_crop(d.landmarks5) for c, d in zip(fc.crops, found.detections)]),
                               dtype=fc.images.dtype, device=pipeline.device)
        targets = fc.targets
        if targets is None and ctx.landmark_detector is not None:
            targets = pixels_to_ndc(lmk5, s)  # some face had no 68 points: fit all on the detector's five
        estimate, fitted = fit_crops(pipeline, ctx.fitter, fc.images, targets, lmk5)
        target = ctx.builder(fc.images, estimate)
        albedo, ws = target.texture, None
        if ctx.synth is not None:
            teacher = pipeline.teacher
            w_avg = teacher.generator.mapping.w_avg.to(fc.images)
            w0 = w_avg.reshape(1, 1, -1).expand(fc.images.shape[0], teacher.num_ws, -1)
            buffers = getattr(ctx.synth, "noise_buffers", None)
            noise0 = buffers() if buffers is not None and ctx.inv["optimize_noise"] else None
            ws, _ = invert_latent(ctx.synth, fc.images, w0, steps=int(ctx.inv["steps"]), lr=float(ctx.inv["lr"]),
                                  perceptual=ctx.lpips, lpips_weight=float(ctx.inv["lpips_weight"]),
                                  l2_weight=float(ctx.inv["l2_weight"]), noise_init=noise0,
                                  noise_weight=float(ctx.inv["noise_weight"]))
            generated = pipeline.albedo_generator(ws).clamp(0, 1)
            if ctx.inv["blend"]:
                r = generated.shape[-1]
                seen = resize_uv(target.weight, r).clamp(0, 1)
                generated = seen * resize_uv(albedo, r) + (1 - seen) * generated
            albedo = generated
        interior = mouth_interior_colour(fc.images, targets) if targets is not None and targets.shape[1] == 68 \
            else None
        vertices, shaded, flat, alpha, lmk = pipeline.render(estimate, albedo, interior=interior)
        result = FaceResult(image=fc.images, ws=ws, z=None, estimate=estimate, albedo=albedo, vertices=vertices,
                            render=shaded, albedo_render=flat, alpha=alpha, landmarks=lmk)
        records, failures = [], []
        stem_folder = _unique_folder(ctx.out, path.stem, ctx.used)
        for k, (det, crop) in enumerate(zip(found.detections, fc.crops)):
            rec = _face_record(found, det, crop, fc.detected[k], lmk[k], estimate[k:k + 1], s, ctx.poor_fit_nme,
                               ctx.profile_yaw_deg)
            nme = rec["nme_68"]
            finite = bool(torch.isfinite(vertices[k]).all()) and (nme is None or math.isfinite(nme))
            if not finite or (nme is not None and nme > ctx.fail_nme):
                failures.append(f"face {k}: " + ("fit is not finite" if not finite else
                                                 f"NME {nme:.3f} > fail_nme={ctx.fail_nme}"))
                continue
            folder = stem_folder if ctx.faces == "largest" else stem_folder / f"face_{k:02d}"
            rec["folder"] = str(folder)
            write_face(folder, result, k, pipeline.head.faces, pipeline.head.verts_uvs, pipeline.head.faces_uvs,
                       ctx.uv_resolution, extra={"source": name, "detection_box": det.box,
                                                 "landmarks5": det.landmarks5, "crop_matrix": np.asarray(crop.matrix),
                                                 "rotation": found.rotation,
                                                 **({} if interior is None else
                                                    {"mouth_interior": interior[k].cpu().numpy()})},
                       glb=ctx.glb, image_name="crop.png",
                       detail=getattr(pipeline.estimator, "detail", None))
            targets_k = None if targets is None else targets[k]
            overlay = overlay_fit(fc.images[k], shaded[k], alpha[k], lmk[k], targets=targets_k)
            save_png(folder / "overlay.png", overlay)
            atomic_write_text(folder / "landmarks.json", json.dumps(rec, indent=1))
            records.append({kk: v for kk, v in rec.items() if kk not in ("detected_68", "fitted_68", "detected_5")})
            ctx.sheet.append((fc.images[k].cpu(), torch.from_numpy(overlay).permute(2, 0, 1).float() / 255,
                              shaded[k].cpu(), F.interpolate(albedo[k:k + 1], size=(s, s), mode="bilinear",
                                                            align_corners=False)[0].clamp(0, 1).cpu()))
        secs = time.perf_counter() - t0
        rot = f", rotated {found.rotation}°" if found.rotation else ""
        if not records:
            return Outcome(name, "failed", "fit_failed", "; ".join(failures) + rot, "", found.rotation, [], secs)
        detail = (f"{found.n_faces} face(s), {len(records)} reconstructed{rot}, albedo {ctx.albedo_source}"
                  + (f"; not fitted: {'; '.join(failures)}" if failures else ""))
        return Outcome(name, "ok", "", detail, str(stem_folder), found.rotation, records, secs)
    except Exception as err:  # noqa: BLE001 - one bad input must not stop the batch; reported in the summary
        log.warning("reconstruct: %s failed: %s", name, err, exc_info=True)
        return Outcome(name, "failed", "error", f"{type(err).__name__}: {err}", seconds=time.perf_counter() - t0)
