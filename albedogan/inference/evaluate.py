"""``python infer.py mode=evaluate``: generator metrics, synthetic ground-truth metrics and the NoW protocol.

For ``n`` seeds the pipeline generates faces (teacher image → fit → G_A albedo → render) and reports:

* distribution metrics between teacher images and renders composited over the teacher's background: FID/KID in a
  labelled feature space (``FID_inception`` only when the Inception weights are on disk, else ``FID_sface``,
  never mixed — see :mod:`albedogan.eval.generator_metrics`);
* LPIPS between each render and its teacher image;
* identity similarity (cosine of identity embeddings) between each teacher image and renders of its face in novel
  head yaws;
* in the procedural world (the teacher knows the truth): albedo error of G_A against the true albedo on face texels,
  the same error of the unwrapped texture (the official demos' output) as a baseline, neutral-shape error (mm) and
  2D landmark error (pixels) of the estimator.

With ``now.dataset_root`` set it also runs the NoW protocol: each listed photo is detected, cropped and fitted
(:func:`albedogan.inference.reconstruct.fit_photo`), its neutral mesh + 7 landmarks exported in NoW's layout
(unless ``now.predictions_root`` points at existing predictions), then scored (:func:`albedogan.eval.now
.evaluate_now`). Everything goes to ``<out>/eval_report.{json,md,png}`` (metrics, the run's config, sha256 of the
checkpoint) plus ``now_result.{json,md}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import yaml

from albedogan.datamodules.eval_sets import NowEvalSet, PhotoScanSet
from albedogan.datamodules.images import ImageLoadError, load_image
from albedogan.eval.generator_metrics import DistributionMetrics, build_feature_space, identity_similarity, paired_lpips
from albedogan.eval.now import (
    evaluate_now,
    evaluate_scan,
    export_now_prediction,
    list_now_samples,
    read_mesh,
    read_now_landmarks,
    write_now_json,
    write_now_markdown,
)
from albedogan.eval.report import EvaluationReport, write_report
from albedogan.eval.synthetic_gt import albedo_error, face_texel_mask, landmark_error, neutral_shape_error
from albedogan.inference.generate import resolve_seeds
from albedogan.inference.pipeline import FacePipeline
from albedogan.inference.reconstruct import FaceNotFoundError, fit_photo
from albedogan.structures import FaceEstimate
from albedogan.utils.io import atomic_write_text
from albedogan.utils.logging import get_logger

__all__ = ["generator_metrics", "now_predictions", "photo_scan_metrics", "run_evaluate", "with_yaw"]

log = get_logger(__name__)


def with_yaw(estimate: FaceEstimate, yaw: float) -> FaceEstimate:
    """The same fit with ``yaw`` radians added to the head's global rotation about +Y (a novel pose)."""
    params = estimate.params
    offset = params.global_pose.new_tensor([0.0, yaw, 0.0])
    return dataclasses.replace(estimate, params=dataclasses.replace(params, global_pose=params.global_pose + offset))


@torch.no_grad()
def generator_metrics(
    pipeline: FacePipeline,
    seeds: Sequence[int],
    batch_size: int = 8,
    novel_yaws: Sequence[float] = (-0.5, 0.5),
    feature_space: str = "auto",
    perceptual: str = "auto",
    kid_subset_size: int = 50,
) -> tuple[dict[str, float], list[str]]:
    """Metrics over the faces of ``seeds`` (see the module docstring); returns (metrics, notes)."""
    from albedogan.assets.convert.identity import build_identity_embedder
    from albedogan.assets.convert.lpips import build_perceptual

    device = pipeline.device
    space = build_feature_space(feature_space)
    dist = DistributionMetrics(space, kid_subsets=20, kid_subset_size=min(kid_subset_size, len(seeds)))
    dist.to(device)
    lpips = build_perceptual(perceptual).to(device)
    embedder = build_identity_embedder("sface").to(device)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}

    def add(name: str, values: torch.Tensor) -> None:
        sums[name] = sums.get(name, 0.0) + float(values.sum())
        counts[name] = counts.get(name, 0) + values.numel()

    mask = None
    for start in range(0, len(seeds), batch_size):
        batch = list(seeds[start:start + batch_size])
        z = pipeline.latents(batch)
        sample = pipeline.teacher.synthesize(pipeline.mapping(z))
        result = pipeline.from_image(sample.image, ws=sample.ws, z=z, truth=sample.truth)
        image = result.image
        render = result.render
        if render.shape[-2:] != image.shape[-2:]:
            render = torch.nn.functional.interpolate(render, size=image.shape[-2:], mode="bilinear",
                                                     align_corners=False)
            alpha = torch.nn.functional.interpolate(result.alpha, size=image.shape[-2:], mode="nearest")
        else:
            alpha = result.alpha
        composite = render * alpha + image * (1 - alpha)  # render over the teacher's own background
        dist.update(image, real=True)
        dist.update(composite, real=False)
        add("LPIPS_render_vs_teacher", paired_lpips(lpips, composite, image))
        novel = torch.stack([pipeline.render(with_yaw(result.estimate, yaw), result.albedo)[1] for yaw in novel_yaws],
                            dim=1)  # (N, P, 3, S, S)
        add("identity_similarity_novel_pose", identity_similarity(embedder, image, novel))
        if sample.truth is not None:
            truth = sample.truth
            if mask is None:
                mask = face_texel_mask(pipeline.head, result.albedo.shape[-1]).to(device)
            add("albedo_error", albedo_error(result.albedo, truth.albedo, mask))
            unwrapped = pipeline.texture_builder(image, result.estimate).texture.clamp(0, 1)
            add("albedo_error_unwrapped_baseline",
                albedo_error(torch.nn.functional.interpolate(unwrapped, size=result.albedo.shape[-2:],
                                                             mode="area"), truth.albedo, mask))
            add("shape_error_mm", neutral_shape_error(pipeline.head, result.estimate.params.shape,
                                                      truth.estimate.params.shape))
            lmk = result.landmarks if result.landmarks is not None else None
            if lmk is not None:
                add("landmark_error_px", landmark_error(lmk, truth.landmarks2d, image.shape[-1]))
    metrics = {name: sums[name] / counts[name] for name in sums}
    metrics.update(dist.compute())
    notes = [f"feature space: {space.label}", f"{len(seeds)} faces, novel yaws {list(novel_yaws)} rad"]
    return metrics, notes


@torch.no_grad()
def now_predictions(
    pipeline: FacePipeline,
    dataset_root: str | os.PathLike,
    predictions_root: str | os.PathLike,
    images_dir: Optional[str | os.PathLike] = None,
    split: str = "val",
    challenge: str = "",
    detector: str = "auto",
    crop_size: int = 224,
    crop_scale: float = 1.25,
    min_face_size: int = 24,
) -> list[str]:
    """Fit every NoW image of ``split`` and export its neutral mesh + 7 landmarks; returns the images skipped."""
    from albedogan.datamodules.detection import build_face_detector

    if pipeline.estimator is None:
        raise ValueError("NoW predictions need an estimator (estimator=embedded or estimator=deca_mica)")
    images_dir = Path(images_dir) if images_dir is not None else Path(dataset_root) / "iphone_pictures"
    face_detector = build_face_detector(detector)
    skipped: list[str] = []
    for sample in list_now_samples(dataset_root, predictions_root, split=split, challenge=challenge):
        path = images_dir / sample.subject / sample.challenge / sample.image
        try:
            fit = fit_photo(load_image(path), pipeline, face_detector, min_face_size, crop_size, crop_scale)
        except (ImageLoadError, FaceNotFoundError) as err:
            log.warning("NoW: %s skipped: %s", sample.key, err)
            skipped.append(sample.key)
            continue
        neutral = pipeline.head.flame.neutral(fit.estimate.params)
        out = Path(predictions_root) / sample.subject / sample.challenge / f"{Path(sample.image).stem}.obj"
        export_now_prediction(out, neutral.vertices[0], pipeline.head.faces, neutral.landmarks7[0])
    return skipped


@torch.no_grad()
def photo_scan_metrics(pipeline: FacePipeline, dataset: PhotoScanSet, out: str | os.PathLike,
                       crop_size: int = 224, crop_scale: float = 1.25, min_face_size: int = 24
                       ) -> tuple[dict[str, float], list[str]]:
    """Fit every photo of a :class:`~albedogan.datamodules.eval_sets.PhotoScanSet`, export its neutral mesh + 7
    landmarks to ``<out>/photo_predictions/<key>.obj/.npy`` and, where the photo has a scan, measure the NoW
    scan-to-prediction distance (:func:`~albedogan.eval.now.evaluate_scan`). Writes
    ``<out>/photo_scans_result.json`` (per photo: status, reason, median/mean/std mm).

    Returns:
        ``({"photos_fitted", "photos_skipped", "photos_with_scan", and with scans "scan_median_mm",
        "scan_mean_mm", "scan_std_mm" over all scan points}, notes)``.
    """
    from albedogan.datamodules.detection import build_face_detector

    if pipeline.estimator is None:
        raise ValueError("photo evaluation needs an estimator (estimator=embedded or estimator=deca_mica)")
    out = Path(out)
    face_detector = build_face_detector(dataset.detector)
    rows, distances = [], []
    for item in dataset.items():
        try:
            fit = fit_photo(load_image(item.photo), pipeline, face_detector, min_face_size, crop_size, crop_scale)
        except (ImageLoadError, FaceNotFoundError) as err:
            log.warning("photo evaluation: %s skipped: %s", item.photo, err)
            rows.append({"photo": str(item.photo), "status": "skipped", "reason": getattr(err, "reason", "error")})
            continue
        neutral = pipeline.head.flame.neutral(fit.estimate.params)
        vertices, landmarks7 = neutral.vertices[0], neutral.landmarks7[0]
        export_now_prediction(out / "photo_predictions" / f"{item.key}.obj", vertices, pipeline.head.faces,
                              landmarks7)
        row: dict[str, Any] = {"photo": str(item.photo), "status": "ok", "scan": None}
        if item.scan is not None:
            scan_v, _ = read_mesh(item.scan)
            ev = evaluate_scan(scan_v, read_now_landmarks(item.landmarks), vertices, pipeline.head.faces,
                               landmarks7, metric=dataset.metric, pred_unit="m", device=pipeline.device)
            distances.append(ev.distances)
            row.update(scan=str(item.scan), median_mm=float(np.median(ev.distances)),
                       mean_mm=float(ev.distances.mean()), std_mm=float(ev.distances.std()))
        rows.append(row)
    atomic_write_text(out / "photo_scans_result.json", json.dumps(rows, indent=2))
    fitted = sum(r["status"] == "ok" for r in rows)
    metrics = {"photos_fitted": float(fitted), "photos_skipped": float(len(rows) - fitted),
               "photos_with_scan": float(len(distances))}
    if distances:
        d = np.concatenate(distances)
        variant = "metric" if dataset.metric else "nonmetric"
        metrics.update({f"scan_{variant}_median_mm": float(np.median(d)), f"scan_{variant}_mean_mm": float(d.mean()),
                        f"scan_{variant}_std_mm": float(d.std())})
    return metrics, [f"photos: {fitted}/{len(rows)} fitted, {len(distances)} with a scan"]


def run_evaluate(
    pipeline: FacePipeline,
    out: str | os.PathLike,
    n: int = 32,
    seeds: Optional[Sequence[int]] = None,
    batch_size: int = 8,
    novel_yaws: Sequence[float] = (-0.5, 0.5),
    feature_space: str = "auto",
    perceptual: str = "auto",
    checkpoint: Optional[str] = None,
    now: Optional[dict[str, Any]] = None,
    data: NowEvalSet | PhotoScanSet | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Path:
    """Run the evaluation (module docstring) and write the report; returns the JSON report path.

    ``data`` is an evaluation set chosen by ``data=now`` (NoW, replaces ``now``) or ``data=photo_scans`` (photos
    with optional scans, :func:`photo_scan_metrics`).
    """
    if device is not None:
        pipeline = pipeline.to(device)
    out = Path(out)
    metrics, notes = generator_metrics(pipeline, resolve_seeds(n, seeds, seed), batch_size, novel_yaws,
                                       feature_space, perceptual)
    if isinstance(data, NowEvalSet):
        now = data.now_options()
    elif isinstance(data, PhotoScanSet):
        photo_metrics, photo_notes = photo_scan_metrics(pipeline, data, out)
        metrics.update(photo_metrics)
        notes += photo_notes
    elif data is not None:
        raise TypeError(f"mode=evaluate: data={type(data).__name__} is not an evaluation set; use data=now or "
                        "data=photo_scans")
    now = dict(now or {})
    if now.get("dataset_root"):
        predictions_root = now.get("predictions_root") or out / "now_predictions"
        if not now.get("predictions_root"):
            skipped = now_predictions(pipeline, now["dataset_root"], predictions_root, now.get("images_dir"),
                                      now.get("split", "val"), now.get("challenge", ""), now.get("detector", "auto"))
            notes.append(f"NoW: {len(skipped)} image(s) without a face fit")
        if not now.get("score", True):
            notes.append(f"NoW: predictions written to {predictions_root} (not scored)")
    if now.get("dataset_root") and now.get("score", True):
        result = evaluate_now(now["dataset_root"], predictions_root, split=now.get("split", "val"),
                              metric=bool(now.get("metric", False)), challenge=now.get("challenge", ""),
                              pred_unit="m", device=pipeline.device)
        write_now_json(result, out / "now_result.json")
        write_now_markdown(result, out / "now_result.md")
        variant = "metric" if now.get("metric") else "nonmetric"
        metrics.update({f"NoW_{variant}_median_mm": result.median, f"NoW_{variant}_mean_mm": result.mean,
                        f"NoW_{variant}_std_mm": result.std})
    config_file = out / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    ckpt = checkpoint if checkpoint and Path(checkpoint).is_file() else None
    report = EvaluationReport.create(metrics, config=config, checkpoints={"inference_weights": ckpt},
                                     notes="; ".join(notes))
    paths = write_report(report, out)
    log.info("evaluate: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return paths.json
