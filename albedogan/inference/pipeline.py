"""The inference pipeline: latent or photo → FLAME mesh + UV albedo + renders.

:class:`FacePipeline` bundles the frozen parts used after training — the teacher (latent → image), the head model
(FLAME + UV layout), the per-image estimator (image → FLAME params, camera, SH light), the albedo generator G_A
(EMA weights; w → UV albedo) and a renderer — and exposes ``@torch.no_grad()`` methods that the ``infer.py`` modes
(generate / reconstruct / video) share. Conventions: images (N, 3, H, W) RGB float in [0, 1]; UV albedo maps
(N, 3, R, R) in [0, 1] in the head's UV layout (row 0 = v 1); FLAME vertices in metres (+Y up, +Z out of the face);
cameras weak-perspective ``[s, tx, ty]`` (:class:`~albedogan.render.WeakPerspectiveCamera`); SH light (N, 9, 3).

Albedo source: G_A(w) when an albedo generator is loaded. Without one (``checkpoint=null`` and
``allow_no_checkpoint=true``), the albedo is the teacher/photo image unwrapped into UV space through the estimated
mesh with mirror completion (:class:`~albedogan.models.targets.AlbedoTargetBuilder`) — what the official demos output.

Weights come from an inference-weights file (``.safetensors`` export or a ``train.py`` ``.ckpt``), whose format has
its own module: :mod:`albedogan.models.weights_file`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from albedogan.assets.locate import AssetFormatError
from albedogan.flame.head import HeadModel
from albedogan.models.weights_file import check_world, load_estimator_weights, load_inference_weights
from albedogan.render import FaceRenderer, WeakPerspectiveCamera
from albedogan.structures import FaceEstimate, GroundTruth, TeacherSample, _TensorRecord, cat_records
from albedogan.teachers.base import Teacher
from albedogan.utils.logging import get_logger
from albedogan.utils.seeding import latents_for_seeds
from albedogan.utils.shapes import assert_shape

__all__ = ["FacePipeline", "FaceResult", "build_pipeline"]

log = get_logger(__name__)

# ------------------------------------------------------------------------------------------------------------------
# pipeline


@dataclass(frozen=True)
class FaceResult(_TensorRecord):
    """One batch of faces through the pipeline (all tensors batch-first, N faces).

    Attributes:
        image: (N, 3, H, W) float [0, 1] the input image (teacher image, or the aligned photo crop).
        ws: (N, num_ws, w_dim) float W+ latents, or None (no latent).
        z: (N, z_dim) float latents, or None.
        estimate: FLAME params, camera (N, 3) ``[s, tx, ty]`` and SH light (N, 9, 3).
        albedo: (N, 3, R, R) float [0, 1] UV albedo (head's UV layout, row 0 = v 1).
        vertices: (N, V, 3) float posed FLAME vertices (metres, FLAME frame).
        render: (N, 3, S, S) float [0, 1] shaded render over a white background, in the input image's framing.
        albedo_render: (N, 3, S, S) float [0, 1] unlit (albedo-only) render over white.
        alpha: (N, 1, S, S) float {0, 1} render coverage.
        landmarks: (N, 68, 2) float image-NDC landmarks of the fit (x right, y down, [-1, 1]).
    """

    image: torch.Tensor
    ws: Optional[torch.Tensor]
    z: Optional[torch.Tensor]
    estimate: FaceEstimate
    albedo: torch.Tensor
    vertices: torch.Tensor
    render: torch.Tensor
    albedo_render: torch.Tensor
    alpha: torch.Tensor
    landmarks: torch.Tensor


class FacePipeline(nn.Module):
    """Teacher + head + estimator + albedo generator + renderer, frozen, in eval mode.

    Args:
        teacher: latent → image (+ ground truth in the embedded world).
        head: FLAME head model with its UV layout.
        estimator: image (N, 3, H, W) [0, 1] → :class:`FaceEstimate` (called as ``estimator(images, truth=...)``),
            or None to use the teacher's ground-truth estimate (the oracle; only for teachers that return truth).
        albedo_generator: G_A (EMA weights) mapping W+ → (N, 3, R, R) albedo, or None for the unwrapped-texture
            albedo (image unwrapped through the fit, mirror-completed).
        render_size: S, side of the renders in pixels.
        mouth_interior: RGB in [0, 1] of the inside of the head seen through an opening (between parted lips, the
            neck opening; FLAME has no mouth cavity) in every render, or None to show the texture of the back of the
            head there (:class:`~albedogan.render.FaceRenderer`'s ``interior``). Reconstruct passes the photo's
            mouth colour instead.
        texture_builder: the unwrapping module used when there is no G_A or no latent (photos without
            inversion); default: an :class:`~albedogan.models.targets.AlbedoTargetBuilder` at ``uv_resolution``,
            no de-lighting.
        uv_resolution: resolution of the unwrapped albedo.
    """

    def __init__(
        self,
        teacher: Teacher,
        head: HeadModel,
        estimator: Optional[nn.Module] = None,
        albedo_generator: Optional[nn.Module] = None,
        render_size: int = 256,
        texture_builder: Optional[nn.Module] = None,
        uv_resolution: int = 256,
        mouth_interior: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.head = head
        self.estimator = estimator
        self.albedo_generator = albedo_generator
        if texture_builder is None:
            from albedogan.models.targets import AlbedoTargetBuilder

            texture_builder = AlbedoTargetBuilder(head, uv_resolution=uv_resolution, delight=False)
        self.texture_builder = texture_builder
        self.render_size = int(render_size)
        self.renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, self.render_size)
        interior = None
        if mouth_interior is not None:
            interior = torch.as_tensor([float(c) for c in mouth_interior], dtype=torch.float32).reshape(-1)
            if interior.numel() != 3 or not bool(((interior >= 0) & (interior <= 1)).all()):
                raise ValueError(f"mouth_interior must be three values in [0, 1] (RGB), got {list(mouth_interior)}")
            interior = interior[None]
        self.register_buffer("mouth_interior", interior, persistent=False)  # (1, 3) or None
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FacePipeline":
        """Always eval mode (inference only)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.head.verts_uvs.device

    @property
    def has_latent_space(self) -> bool:
        """True when albedo comes from G_A (a latent is needed: generated faces or an inverted photo)."""
        return self.albedo_generator is not None

    # -- latents ---------------------------------------------------------------------------------------------------

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """(N, z_dim) float z for ``seeds`` (one generator per seed: same seed → same z whatever the batch)."""
        return latents_for_seeds(list(seeds), self.teacher.z_dim, device=self.device)

    @torch.no_grad()
    def mapping(self, z: torch.Tensor, psi: Optional[float] = None) -> torch.Tensor:
        """(N, z_dim) → (N, num_ws, w_dim) W+ through the teacher's mapping, truncated with ``psi``."""
        return self.teacher.mapping(z.to(self.device), psi)

    # -- parts -----------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def estimate(self, images: torch.Tensor, truth: Optional[GroundTruth] = None) -> FaceEstimate:
        """(N, 3, H, W) [0, 1] → :class:`FaceEstimate` (estimator, or ``truth.estimate`` when there is none)."""
        assert_shape(images, [None, 3, None, None], "images")
        if self.estimator is None:
            if truth is None:
                raise ValueError(
                    "FacePipeline: no estimator configured and the input has no ground truth — configure "
                    "`estimator` (e.g. estimator=embedded) to fit photos or non-procedural teachers"
                )
            return truth.estimate
        return self.estimator(images, truth=truth)

    @torch.no_grad()
    def albedo(self, ws: Optional[torch.Tensor], image: Optional[torch.Tensor] = None,
               estimate: Optional[FaceEstimate] = None) -> torch.Tensor:
        """UV albedo (N, 3, R, R) in [0, 1]: G_A(ws) when there are G_A and latents, else ``image`` unwrapped
        through ``estimate`` (mirror-completed)."""
        if self.albedo_generator is not None and ws is not None:
            return self.albedo_generator(ws.to(self.device)).clamp(0, 1)
        if image is None or estimate is None:
            raise ValueError("FacePipeline.albedo: without an albedo generator the image and estimate are needed")
        return self.texture_builder(image, estimate).texture.clamp(0, 1)

    @torch.no_grad()
    def render(self, estimate: FaceEstimate, albedo: torch.Tensor, cam: Optional[torch.Tensor] = None,
               light: Optional[torch.Tensor] = None, interior: Optional[torch.Tensor] = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Render the fit: returns (vertices (N, V, 3), shaded (N, 3, S, S), unlit (N, 3, S, S), alpha, landmarks).

        ``cam``/``light`` override the estimate's camera (N, 3) and SH light (N, 9, 3) (e.g. for turntables);
        ``interior`` (N, 3) colours the inside of the head seen through the parted lips (``FaceRenderer``; default
        the pipeline's ``mouth_interior``); renders are composited over white.
        """
        interior = self.mouth_interior if interior is None else interior
        out = self.head(estimate.params)
        camera = WeakPerspectiveCamera(estimate.cam if cam is None else cam)
        sh = estimate.light if light is None else light
        shaded = self.renderer.render_world(out.vertices, camera, albedo, sh, landmarks=out.landmarks2d,
                                            interior=interior)
        flat = self.renderer(camera.transform_points(out.vertices), albedo, None, interior=interior)
        alpha = shaded.alpha
        white = 1 - alpha
        return (out.vertices, (shaded.image + white).clamp(0, 1), (flat.image + white).clamp(0, 1), alpha,
                shaded.landmarks)

    # -- end to end ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def from_ws(self, ws: torch.Tensor, z: Optional[torch.Tensor] = None) -> FaceResult:
        """W+ latents (N, num_ws, w_dim) → teacher image → estimate + albedo → renders."""
        sample: TeacherSample = self.teacher.synthesize(ws.to(self.device))
        return self.from_image(sample.image, ws=sample.ws, z=z, truth=sample.truth)

    @torch.no_grad()
    def from_image(self, image: torch.Tensor, ws: Optional[torch.Tensor] = None, z: Optional[torch.Tensor] = None,
                   truth: Optional[GroundTruth] = None, estimate: Optional[FaceEstimate] = None) -> FaceResult:
        """An image (N, 3, H, W) [0, 1] (+ its latent when known) → :class:`FaceResult`."""
        image = image.to(self.device)
        estimate = self.estimate(image, truth) if estimate is None else estimate
        albedo = self.albedo(ws, image, estimate)
        vertices, shaded, flat, alpha, lmk = self.render(estimate, albedo)
        return FaceResult(image=image, ws=ws, z=z, estimate=estimate, albedo=albedo, vertices=vertices,
                          render=shaded, albedo_render=flat, alpha=alpha, landmarks=lmk)

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], psi: Optional[float] = None,
                 edit: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> FaceResult:
        """Seeds → z → W+ (→ ``edit``) → :meth:`from_ws`, one seed at a time.

        Each seed runs as its own batch of one, so a seed's face — every tensor, hence every file written from it —
        is bit-identical whatever other seeds are generated with it: batched matrix products and convolutions
        (the teacher's mapping, the estimator, G_A, the renderer) pick other kernels and summation orders for
        other batch sizes (measured: 1e-6 differences in ws, 3e-6 in the FLAME parameters).

        Args:
            seeds: the seeds, in output order.
            psi: truncation (None = the teacher's default).
            edit: optional W+ edit ``ws (1, num_ws, w_dim) -> ws``, applied before synthesis.
        """
        results = []
        for seed in seeds:
            z = self.latents([seed])
            ws = self.mapping(z, psi)
            results.append(self.from_ws(ws if edit is None else edit(ws), z=z))
        return cat_records(results)


def build_pipeline(
    teacher: Teacher,
    head: HeadModel,
    estimator: Optional[nn.Module],
    checkpoint: Optional[str | os.PathLike],
    allow_no_checkpoint: bool = False,
    render_size: int = 256,
    uv_resolution: int = 256,
    device: torch.device | str = "cpu",
    world: Optional[Mapping[str, Any]] = None,
    mouth_interior: Optional[Sequence[float]] = None,
) -> FacePipeline:
    """Assemble a :class:`FacePipeline` and load its weights.

    Args:
        teacher, head, estimator: built parts (Hydra instantiates them from ``teacher``, ``flame``, ``estimator``).
        checkpoint: ``.safetensors`` export or Lightning ``.ckpt`` (:func:`~albedogan.models.weights_file.
            load_inference_weights`); None needs ``allow_no_checkpoint``.
        allow_no_checkpoint: accept ``checkpoint=None`` → unwrapped-texture albedo, untrained estimator weights.
        render_size, uv_resolution, mouth_interior: see :class:`FacePipeline`.
        device: where the pipeline runs.
        world: the configured ``{"teacher", "estimator", "flame"}`` sections; checked (:func:`check_world`)
            against the world recorded in the checkpoint's metadata when both exist.

    Raises:
        ValueError: ``checkpoint`` is None and ``allow_no_checkpoint`` is false, or the worlds differ.
    """
    generator = None
    if checkpoint is None or str(checkpoint) in ("", "null", "None"):
        if not allow_no_checkpoint:
            raise ValueError(
                "no checkpoint: pass checkpoint=<file.safetensors|file.ckpt> (e.g. the shipped "
                "checkpoints/albedogan_synthetic.safetensors or one from `python train.py`), or set "
                "allow_no_checkpoint=true to use the teacher with the unwrapped, mirror-completed texture"
            )
        log.warning("no checkpoint: albedo = unwrapped + mirror-completed texture; estimator keeps its own weights")
    else:
        weights = load_inference_weights(checkpoint)
        if world is not None and weights.metadata.get("world"):
            check_world(weights.metadata["world"], world, str(weights.source))
        generator = weights.albedo_generator
        if weights.estimator_state is not None:
            if estimator is None:
                log.warning("%s holds estimator weights but estimator=null (oracle): they are not used",
                            weights.source)
            else:
                load_estimator_weights(estimator, weights)
        if generator is not None and generator.w_dim != teacher.w_dim:
            raise AssetFormatError(f"{weights.source}: G_A has w_dim={generator.w_dim} but the teacher has "
                                   f"w_dim={teacher.w_dim}; use the teacher the checkpoint was trained with")
    pipeline = FacePipeline(teacher, head, estimator, generator, render_size=render_size, uv_resolution=uv_resolution,
                            mouth_interior=mouth_interior)
    return pipeline.to(device)
