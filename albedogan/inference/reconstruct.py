"""``python infer.py mode=reconstruct input=<file | folder | glob>``: photos → textured FLAME meshes.

Per input: load (EXIF rotation applied, grayscale/CMYK/alpha converted, huge photos downscaled, decompression bombs
refused) → detect faces (YuNet by default, insightface SCRFD when its pack exists) → keep the largest face (skip
when its box is smaller than ``min_face_size`` pixels) → DECA-style square crop (``crop_size``) → estimator
(shape, expression, pose, camera, light; 5-point landmarks passed in crop pixels) → albedo:

* G_A(w) on a latent found by optimisation-based inversion (LPIPS + L2 against the crop, ``invert.steps`` Adam
  steps from the mean w) when the teacher's synthesis is differentiable (a StyleGAN2 teacher with a generator) and a
  G_A is loaded;
* otherwise the crop unwrapped into UV space through the fit, mirror-completed (the pipeline's texture builder).

Outputs per input (``<out>/<stem>/``): the exports of :func:`~albedogan.inference.generate.write_face` (mesh OBJ +
MTL + albedo PNG, GLB, params.npz, render.png, albedo_render.png) with ``crop.png`` for the input, plus
``overlay.png`` (the render composited on the crop with the fitted landmarks). Per run: ``summary.json`` and a rich
table listing every input with its outcome. Bad inputs never stop the batch; the mode returns exit status 1 when
any input was skipped or failed, else 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from albedogan.datamodules.alignment import encoder_crop
from albedogan.datamodules.detection import FaceDetection, build_face_detector
from albedogan.datamodules.images import ImageLoadError, iter_image_paths, load_image, to_tensor
from albedogan.inference.export import save_png, texture_to_uint8
from albedogan.inference.generate import write_face
from albedogan.inference.pipeline import FacePipeline, FaceResult
from albedogan.structures import FaceEstimate
from albedogan.utils.io import atomic_write_text
from albedogan.utils.logging import get_logger

__all__ = [
    "FaceNotFoundError",
    "Outcome",
    "PhotoFit",
    "differentiable_synthesis",
    "fit_photo",
    "invert_latent",
    "overlay_fit",
    "run_reconstruct",
]

log = get_logger(__name__)


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
    """

    input: str
    status: str
    reason: str = ""
    detail: str = ""
    output: str = ""


def differentiable_synthesis(teacher: torch.nn.Module) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """A differentiable ``ws (N, num_ws, w_dim) → image (N, 3, R, R) in [0, 1]`` for teachers that have one.

    A StyleGAN2-style teacher exposes ``generator.synthesis`` (NVIDIA naming, output in [-1, 1]); the procedural
    teacher renders without gradients and has none. Returns None when unavailable.
    """
    synthesis = getattr(getattr(teacher, "generator", None), "synthesis", None)
    if synthesis is None:
        return None

    def synth(ws: torch.Tensor) -> torch.Tensor:
        return ((synthesis(ws, noise_mode="const") + 1) * 0.5).clamp(0, 1)

    return synth


def invert_latent(
    synthesis: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    w_init: torch.Tensor,
    steps: int = 100,
    lr: float = 0.05,
    perceptual: Optional[torch.nn.Module] = None,
    lpips_weight: float = 1.0,
    l2_weight: float = 1.0,
    mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, list[float]]:
    """Optimisation-based GAN inversion in W+ (Adam on the latent; the generator stays frozen).

    Loss per step: ``lpips_weight · LPIPS(I(w), target) + l2_weight · mean((I(w) − target)² · mask)``, with the
    synthesised image resized (bilinear, antialiased) to the target size.

    Args:
        synthesis: differentiable ws (N, num_ws, w_dim) → (N, 3, R, R) in [0, 1] (:func:`differentiable_synthesis`).
        target: (N, 3, H, W) float [0, 1] images to match.
        w_init: (N, num_ws, w_dim) start (e.g. the mean w broadcast).
        steps: Adam steps (0 returns ``w_init``).
        lr: Adam learning rate.
        perceptual: LPIPS-style distance ((N, 3, H, W) pairs in [0, 1] → (N,)), or None to use L2 only.
        lpips_weight, l2_weight: loss weights.
        mask: optional (N, 1, H, W) weights of the L2 term (e.g. the face region).

    Returns:
        (ws (N, num_ws, w_dim) detached, losses per step).
    """
    w = w_init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999))
    losses: list[float] = []
    size = target.shape[-2:]
    for _ in range(int(steps)):
        with torch.enable_grad():
            img = synthesis(w)
            if img.shape[-2:] != size:
                img = F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)
            sq = (img - target) ** 2
            loss = l2_weight * (sq * mask).mean() if mask is not None else l2_weight * sq.mean()
            if perceptual is not None and lpips_weight > 0:
                loss = loss + lpips_weight * perceptual(img, target).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return w.detach(), losses


def overlay_fit(image: torch.Tensor, render: torch.Tensor, alpha: torch.Tensor, landmarks: torch.Tensor,
                opacity: float = 0.8) -> np.ndarray:
    """The fit drawn over its image.

    Args:
        image: (3, H, W) float [0, 1].
        render: (3, h, w) float [0, 1] render of the fit in the same framing (resized to H, W).
        alpha: (1, h, w) render coverage.
        landmarks: (L, 2) image-NDC landmarks (x right, y down, [-1, 1] spans the image).
        opacity: render opacity over the image.

    Returns:
        (H, W, 3) uint8 RGB with the landmarks as green 3×3 dots.
    """
    h, w = image.shape[-2:]
    rend = F.interpolate(render[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    a = F.interpolate(alpha[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0] * opacity
    comp = image.float() * (1 - a) + rend * a
    out = texture_to_uint8(comp).copy()
    px = ((landmarks[:, 0].float() + 1) * 0.5 * w - 0.5).round().long()
    py = ((landmarks[:, 1].float() + 1) * 0.5 * h - 0.5).round().long()
    dy, dx = torch.meshgrid(torch.arange(-1, 2), torch.arange(-1, 2), indexing="ij")
    xs = (px[:, None] + dx.reshape(1, -1)).clamp(0, w - 1).reshape(-1).numpy()
    ys = (py[:, None] + dy.reshape(1, -1)).clamp(0, h - 1).reshape(-1).numpy()
    out[ys, xs] = (40, 220, 60)
    return out


class FaceNotFoundError(ValueError):
    """No usable face in a photo; ``reason`` is ``"no_face"`` or ``"tiny_face"``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PhotoFit:
    """The estimator's fit of the largest face of a photo.

    Attributes:
        detection: the chosen face (box and 5 landmarks in photo pixels).
        crop: the aligned encoder crop (image + photo→crop matrix).
        crop_tensor: (1, 3, S, S) float [0, 1] crop on the pipeline's device.
        estimate: FLAME parameters, camera (crop NDC) and light.
        n_faces: number of faces the detector found.
    """

    detection: FaceDetection
    crop: Any
    crop_tensor: torch.Tensor
    estimate: FaceEstimate
    n_faces: int


@torch.no_grad()
def fit_photo(image: np.ndarray, pipeline: FacePipeline, face_detector, min_face_size: int = 24,
              crop_size: int = 224, crop_scale: float = 1.25) -> PhotoFit:
    """Detect the largest face of an (H, W, 3) uint8 RGB photo, crop it as the encoder expects and estimate it.

    Raises:
        FaceNotFoundError: no face, or the largest one is smaller than ``min_face_size`` pixels.
    """
    detections = face_detector.detect(image)
    if not detections:
        raise FaceNotFoundError("no_face", f"no face found in {image.shape[1]}x{image.shape[0]} image")
    det = _largest(detections)
    if min(det.width, det.height) < min_face_size:
        raise FaceNotFoundError(
            "tiny_face", f"largest face {det.width:.0f}x{det.height:.0f} px < min_face_size={min_face_size}")
    crop = encoder_crop(image, det, size=crop_size, scale=crop_scale)
    crop_t = to_tensor(crop.image)[None].to(pipeline.device)  # (1, 3, S, S) in [0, 1]
    lmk5 = torch.as_tensor(crop.to_crop(det.landmarks5), dtype=crop_t.dtype, device=pipeline.device)[None]
    estimate = pipeline.estimator(crop_t, landmarks5=lmk5)
    return PhotoFit(det, crop, crop_t, estimate, len(detections))


def _largest(detections: list[FaceDetection]) -> FaceDetection:
    return max(detections, key=lambda d: d.width * d.height)


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
    for col in ("input", "status", "reason", "detail"):
        table.add_column(col)
    colour = {"ok": "green", "skipped": "yellow", "failed": "red"}
    for o in outcomes:
        table.add_row(o.input, f"[{colour[o.status]}]{o.status}[/]", o.reason, o.detail)
    Console(stderr=True, width=160).print(table)


@torch.no_grad()
def run_reconstruct(
    pipeline: FacePipeline,
    input: str | os.PathLike | list,  # noqa: A002 - the CLI key is `input`
    out: str | os.PathLike,
    detector: str = "auto",
    detector_model_root: Optional[str] = None,
    score_threshold: Optional[float] = None,
    min_face_size: int = 24,
    max_pixels: Optional[int] = 100_000_000,
    max_side: Optional[int] = 2048,
    crop_size: int = 224,
    crop_scale: float = 1.25,
    invert: Optional[dict[str, Any]] = None,
    perceptual: str = "auto",
    uv_resolution: Optional[int] = None,
    glb: bool = True,
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
        min_face_size: skip faces whose box is smaller than this (pixels of the loaded image, after ``max_side``).
        max_pixels: refuse images whose header declares more pixels (decompression-bomb guard); None = off.
        max_side: downscale larger photos so max(H, W) <= max_side before detection; None = keep.
        crop_size: side of the aligned crop given to the estimator (pixels).
        crop_scale: crop side = ``crop_scale`` × the face box size.
        invert: ``{"enabled": bool, "steps": int, "lr": float, "lpips_weight": float, "l2_weight": float}`` for
            the latent inversion (used only with a differentiable teacher and a G_A).
        perceptual: ``auto`` | ``lpips`` | ``stlpips`` for the inversion's LPIPS term.
        uv_resolution: albedo resolution of the exports (None = as produced).
        glb: also write GLB files.
        recursive: descend into sub-folders of a folder input.
        seed: the run's seed (recorded; inversion is deterministic).
        device: moves the pipeline (None = leave it).

    Returns:
        0 when every input was reconstructed, 1 otherwise.
    """
    if device is not None:
        pipeline = pipeline.to(device)
    if pipeline.estimator is None:
        raise ValueError("reconstruct needs an estimator (photos have no ground truth): set estimator=embedded "
                         "or estimator=deca_mica")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = iter_image_paths(input, recursive=recursive) if not isinstance(input, (list, tuple)) else \
        iter_image_paths([str(p) for p in input], recursive=recursive)
    face_detector = build_face_detector(detector, model_root=detector_model_root, score_threshold=score_threshold)
    inv = {"enabled": True, "steps": 100, "lr": 0.05, "lpips_weight": 1.0, "l2_weight": 1.0, **dict(invert or {})}
    synth = differentiable_synthesis(pipeline.teacher) if pipeline.albedo_generator is not None else None
    use_inversion = bool(inv["enabled"]) and synth is not None
    lpips = None
    if use_inversion and float(inv["lpips_weight"]) > 0:
        from albedogan.assets.convert.lpips import build_perceptual

        lpips = build_perceptual(perceptual).to(pipeline.device)
    albedo_source = "G_A(inverted w)" if use_inversion else "unwrapped+mirror"
    head = pipeline.head
    outcomes: list[Outcome] = []
    used: set[str] = set()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as progress:
        task = progress.add_task("reconstruct", total=len(paths))
        for path in paths:
            outcomes.append(_reconstruct_one(path, pipeline, face_detector, out, used, head, min_face_size,
                                             max_pixels, max_side, crop_size, crop_scale, synth if use_inversion
                                             else None, inv, lpips, uv_resolution, glb, albedo_source))
            progress.advance(task)
    atomic_write_text(out / "summary.json", json.dumps(
        {"outputs": str(out), "albedo_source": albedo_source, "seed": int(seed),
         "inputs": [asdict(o) for o in outcomes]}, indent=2))
    _print_summary(outcomes, out)
    n_ok = sum(o.status == "ok" for o in outcomes)
    log.info("reconstruct: %d/%d inputs ok -> %s (summary %s)", n_ok, len(outcomes), out, out / "summary.json")
    return 0 if n_ok == len(outcomes) else 1


def _reconstruct_one(path: Path, pipeline: FacePipeline, face_detector, out: Path, used: set[str], head,
                     min_face_size: int, max_pixels: Optional[int], max_side: Optional[int], crop_size: int,
                     crop_scale: float, synth, inv: dict[str, Any], lpips, uv_resolution: Optional[int], glb: bool,
                     albedo_source: str) -> Outcome:
    name = str(path)
    try:
        image = load_image(path, max_pixels=max_pixels, max_side=max_side)
    except ImageLoadError as err:
        return Outcome(name, "skipped", err.reason, str(err).split("): ", 1)[-1])
    try:
        try:
            fit = fit_photo(image, pipeline, face_detector, min_face_size, crop_size, crop_scale)
        except FaceNotFoundError as err:
            return Outcome(name, "skipped", err.reason, str(err))
        det, crop, crop_t, estimate, n_faces = fit.detection, fit.crop, fit.crop_tensor, fit.estimate, fit.n_faces
        ws = None
        if synth is not None:
            teacher = pipeline.teacher
            w_avg = teacher.generator.mapping.w_avg.to(crop_t)
            w0 = w_avg.reshape(1, 1, -1).expand(1, teacher.num_ws, -1)
            ws, _ = invert_latent(synth, crop_t, w0, steps=int(inv["steps"]), lr=float(inv["lr"]),
                                  perceptual=lpips, lpips_weight=float(inv["lpips_weight"]),
                                  l2_weight=float(inv["l2_weight"]))
        result: FaceResult = pipeline.from_image(crop_t, ws=ws, estimate=estimate)
        folder = _unique_folder(out, path.stem, used)
        write_face(folder, result, 0, head.faces, head.verts_uvs, head.faces_uvs, uv_resolution,
                   extra={"source": name, "detection_box": det.box, "landmarks5": det.landmarks5,
                          "crop_matrix": np.asarray(crop.matrix)}, glb=glb, image_name="crop.png",
                   detail=getattr(pipeline.estimator, "detail", None))
        save_png(folder / "overlay.png", overlay_fit(result.image[0], result.render[0], result.alpha[0],
                                                     result.landmarks[0]))
        return Outcome(name, "ok", "", f"{n_faces} face(s), box {det.width:.0f}x{det.height:.0f} px, "
                                       f"albedo {albedo_source}", str(folder))
    except Exception as err:  # noqa: BLE001 - one bad input must not stop the batch; reported in the summary
        log.warning("reconstruct: %s failed: %s", name, err, exc_info=True)
        return Outcome(name, "failed", "error", f"{type(err).__name__}: {err}")
