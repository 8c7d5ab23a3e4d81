"""The inference pipeline: latent or photo → FLAME mesh + UV albedo + renders, and the inference-weights file.

:class:`FacePipeline` bundles the frozen parts used after training — the teacher (latent → image), the head model
(FLAME + UV layout), the per-image estimator (image → FLAME params, camera, SH light), the albedo generator G_A
(EMA weights; w → UV albedo) and a renderer — and exposes ``@torch.no_grad()`` methods that the ``infer.py`` modes
(generate / reconstruct / video) share. Conventions: images (N, 3, H, W) RGB float in [0, 1]; UV albedo maps
(N, 3, R, R) in [0, 1] in the head's UV layout (row 0 = v 1); FLAME vertices in metres (+Y up, +Z out of the face);
cameras weak-perspective ``[s, tx, ty]`` (:class:`~albedogan.render.WeakPerspectiveCamera`); SH light (N, 9, 3).

Albedo source: G_A(w) when an albedo generator is loaded. Without one (``checkpoint=null`` and
``allow_no_checkpoint=true``), the albedo is the teacher/photo image unwrapped into UV space through the estimated
mesh with mirror completion (:class:`~albedogan.models.targets.AlbedoTargetBuilder`) — what the official demos output.

Weights file (:func:`export_inference_weights` / :func:`load_inference_weights`): one ``.safetensors`` file with the
tensors ``albedo_generator.<key>`` (G_A, EMA) and optionally ``estimator.<key>``, and in its header metadata a JSON
record ``{"format": "albedogan-inference", "version": 1, "albedo_generator": <AlbedoGenerator.init_kwargs>,
"metadata": {...}}``, so G_A is rebuilt from the file alone (the estimator is built from the config and its state is
loaded strictly). Lightning ``.ckpt`` files are read with ``torch.load(weights_only=True)``; their state_dict keys
are selected by prefix (:data:`DEFAULT_CKPT_PREFIXES`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.flame.head import HeadModel
from albedogan.render import FaceRenderer, WeakPerspectiveCamera
from albedogan.structures import FaceEstimate, GroundTruth, TeacherSample, _TensorRecord
from albedogan.teachers.base import Teacher
from albedogan.utils.io import atomic_write_bytes
from albedogan.utils.logging import get_logger
from albedogan.utils.seeding import latents_for_seeds
from albedogan.utils.shapes import assert_shape

__all__ = [
    "DEFAULT_CKPT_PREFIXES",
    "FacePipeline",
    "FaceResult",
    "InferenceWeights",
    "check_world",
    "export_inference_weights",
    "load_estimator_weights",
    "load_inference_weights",
    "world_record",
    "resample_uv",
]

log = get_logger(__name__)

WEIGHTS_FORMAT = "albedogan-inference"
WEIGHTS_VERSION = 1
#: state_dict prefixes searched (in order) in a Lightning ``.ckpt`` for the EMA albedo generator and the estimator.
DEFAULT_CKPT_PREFIXES: dict[str, tuple[str, ...]] = {
    "albedo_generator": ("G_ema.module.", "G_A_ema.", "albedo_generator_ema.", "G_A.", "G.", "albedo_generator."),
    "estimator": ("estimator.",),
}
#: attributes of a training module searched (in order) by :func:`export_inference_weights`.
_MODULE_ATTRS: dict[str, tuple[str, ...]] = {
    "albedo_generator": ("G_ema", "G_A_ema", "albedo_generator_ema", "G_A", "G", "albedo_generator"),
    "estimator": ("estimator",),
}


# ------------------------------------------------------------------------------------------------------------------
# weights file


@dataclass(frozen=True)
class InferenceWeights:
    """What an inference weights file holds.

    Attributes:
        albedo_generator: the rebuilt G_A (EMA weights) in eval mode on the CPU, or None when the file has none.
        estimator_state: the estimator's state_dict (CPU tensors) or None; load it into the config-built estimator.
        metadata: free-form JSON-compatible record (e.g. training step, config summary).
        source: the file it came from.
    """

    albedo_generator: Optional[nn.Module]
    estimator_state: Optional[dict[str, torch.Tensor]]
    metadata: dict[str, Any]
    source: Path


def _find_part(module: nn.Module, part: str) -> Optional[nn.Module]:
    for name in _MODULE_ATTRS[part]:
        found = getattr(module, name, None)
        inner = getattr(found, "module", None)  # an EMA wrapper (models.ema.ModelEMA) holds the copy as .module
        if isinstance(inner, nn.Module) and hasattr(inner, "init_kwargs"):
            return inner
        if isinstance(found, nn.Module):
            return found
    return None


def world_record(world: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings that define a trained world (teacher / estimator / flame config sections) as JSON-able data.

    Every ``*_path`` / ``*_dir`` entry is dropped before it is resolved, so exports carry no machine paths.
    ``world`` may hold plain values or OmegaConf nodes of the run's config (interpolations resolve there).
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def keep(node: Any, key: Any) -> bool:
        if str(key).endswith(("_path", "_dir")):
            return False
        return not (isinstance(node, DictConfig) and OmegaConf.is_missing(node, key))  # e.g. `head: ???` (injected)

    def clean(node: Any) -> Any:
        if isinstance(node, (Mapping, DictConfig)):
            return {str(k): clean(node[k]) for k in node.keys() if keep(node, k)}
        if isinstance(node, ListConfig):
            return OmegaConf.to_container(node, resolve=True)
        return node

    return {} if world is None else clean(world)


WORLD_KEYS_FREE_AT_INFERENCE = frozenset({"teacher.image_size", "teacher.target_image_size", "estimator.trainable",
                                          "estimator.detail"})
"""World settings inference may change without breaking the trained weights (render size, training-only flags)."""


def check_world(recorded: Mapping[str, Any], configured: Mapping[str, Any], source: str) -> None:
    """Raise one clear error when the configured teacher / estimator / flame differ from those a checkpoint was
    trained with (``recorded``, from its metadata) — e.g. another latent size would silently break w ↔ albedo.

    Only keys present in both are compared; :data:`WORLD_KEYS_FREE_AT_INFERENCE` may differ.
    """
    diffs: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) & set(b)):
                walk(a[k], b[k], f"{key}.{k}" if key else str(k))
        elif key not in WORLD_KEYS_FREE_AT_INFERENCE and a != b:
            diffs.append(f"  {key}: trained with {a!r}, configured {b!r}")

    walk(dict(recorded), world_record(configured), "")
    if diffs:
        raise ValueError(
            f"{source} was trained in another world than the one configured:\n" + "\n".join(diffs)
            + "\nUse the settings it was trained with (for the shipped embedded checkpoint: world=synthetic)."
        )


def export_inference_weights(
    module: nn.Module,
    path: str | os.PathLike,
    metadata: Optional[Mapping[str, Any]] = None,
    include_estimator: bool = True,
) -> Path:
    """Write G_A (preferring its EMA copy) and the estimator of ``module`` to one safetensors file, atomically
    (a module with an estimator but no G_A, e.g. the estimator pre-training module, writes the estimator alone).

    Args:
        module: a training module (or any ``nn.Module``) with an albedo generator attribute — the first of
            ``G_ema`` (a :class:`~albedogan.models.ema.ModelEMA`: its ``.module``), ``G_A_ema``,
            ``albedo_generator_ema``, ``G_A``, ``G``, ``albedo_generator`` that is a module with ``init_kwargs`` —
            and optionally ``estimator``; an AlbedoGenerator itself is accepted too.
        path: output ``.safetensors`` file.
        metadata: extra JSON-serialisable record stored in the header.
        include_estimator: also store the estimator's state_dict when the module has one.

    Returns:
        The written path.

    Raises:
        ValueError: when neither an albedo generator (with ``init_kwargs``) nor an estimator is found.
    """
    from safetensors.torch import save

    from albedogan.nets.albedo_generator import AlbedoGenerator

    g = module if isinstance(module, AlbedoGenerator) else _find_part(module, "albedo_generator")
    est = None if (not include_estimator or g is module) else _find_part(module, "estimator")
    g = g if hasattr(g, "init_kwargs") else None  # a generator without init_kwargs cannot be rebuilt
    if g is None and est is None:
        raise ValueError(
            f"export_inference_weights: {type(module).__name__} has neither an albedo generator "
            f"(looked for attributes {list(_MODULE_ATTRS['albedo_generator'])} with init_kwargs) nor an estimator"
        )
    tensors = {} if g is None else {f"albedo_generator.{k}": v.detach().cpu().contiguous()
                                    for k, v in g.state_dict().items()}
    if est is not None:
        tensors.update({f"estimator.{k}": v.detach().cpu().contiguous() for k, v in est.state_dict().items()})
    record = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "albedo_generator": None if g is None else dict(g.init_kwargs),
        "has_estimator": est is not None,
        "metadata": dict(metadata or {}),
    }
    data = save(tensors, metadata={"albedogan": json.dumps(record, sort_keys=True)})
    atomic_write_bytes(path, data)
    return Path(path)


def _split_prefixed(state: Mapping[str, torch.Tensor], prefixes: Sequence[str]) -> Optional[dict[str, torch.Tensor]]:
    for prefix in prefixes:
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if part:
            return part
    return None


def _load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: Path) -> None:
    own_state = module.state_dict()
    own = set(own_state.keys())
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(own_state[k].shape)}" for k in sorted(own & set(state))
             if tuple(state[k].shape) != tuple(own_state[k].shape)]
    if wrong:
        raise AssetFormatError(
            f"{source}: {what} weights have other shapes than the configured network (stored vs built): "
            f"{wrong[:8]} — check that the checkpoint was trained with the same model/estimator config"
        )
    if missing or unexpected:
        raise AssetFormatError(
            f"{source}: {what} weights do not match the configured network: missing keys {missing[:8]}"
            f"{' …' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}{' …' if len(unexpected) > 8 else ''}"
            " — check that the checkpoint was trained with the same model/estimator config"
        )
    module.load_state_dict(state, strict=True)


def load_inference_weights(
    path: str | os.PathLike,
    albedo_generator_kwargs: Optional[Mapping[str, Any]] = None,
    prefixes: Optional[Mapping[str, Sequence[str]]] = None,
) -> InferenceWeights:
    """Read a ``.safetensors`` export or a Lightning ``.ckpt`` (loaded with ``weights_only=True``).

    Args:
        path: the weights file.
        albedo_generator_kwargs: constructor kwargs of G_A for ``.ckpt`` files (a ``.safetensors`` export carries
            its own; a ``.ckpt`` whose ``hyper_parameters`` hold ``albedo_generator_kwargs`` uses those).
        prefixes: ``{"albedo_generator": [...], "estimator": [...]}`` state_dict prefixes for ``.ckpt`` files
            (default :data:`DEFAULT_CKPT_PREFIXES`).

    Returns:
        :class:`InferenceWeights`.

    Raises:
        MissingAssetError: the file does not exist.
        AssetFormatError: not a supported file, or keys/shapes do not match.
    """
    from albedogan.nets.albedo_generator import AlbedoGenerator

    source = Path(path)
    if not source.is_file():
        raise MissingAssetError(
            f"checkpoint not found: {source} — pass checkpoint=<file.safetensors|file.ckpt> (written by "
            "`python train.py`), or checkpoint=null allow_no_checkpoint=true for the unwrapped-texture mode"
        )
    prefixes = {**DEFAULT_CKPT_PREFIXES, **{k: tuple(v) for k, v in (prefixes or {}).items()}}
    if source.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(source), framework="pt") as fh:
                header = fh.metadata() or {}
            state = load_file(str(source))
            record = json.loads(header["albedogan"])
        except Exception as err:  # noqa: BLE001 - any parse failure is one format error
            raise AssetFormatError(f"{source}: not an albedogan inference weights file ({err})") from err
        if record.get("format") != WEIGHTS_FORMAT or int(record.get("version", -1)) > WEIGHTS_VERSION:
            raise AssetFormatError(f"{source}: unsupported weights record {record.get('format')!r} "
                                   f"v{record.get('version')} (expected {WEIGHTS_FORMAT} v<={WEIGHTS_VERSION})")
        g_kwargs: Optional[Mapping[str, Any]] = record.get("albedo_generator")
        metadata = dict(record.get("metadata", {}))
        g_state = _split_prefixed(state, ("albedo_generator.",))
        est_state = _split_prefixed(state, ("estimator.",))
    elif source.suffix == ".ckpt":
        try:
            ckpt = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise AssetFormatError(f"{source}: cannot read as a Lightning checkpoint with weights_only=True ({err})"
                                   ) from err
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise AssetFormatError(f"{source}: no 'state_dict' in this .ckpt (is it a Lightning checkpoint?)")
        hparams = ckpt.get("hyper_parameters") or {}
        g_kwargs = albedo_generator_kwargs or hparams.get("albedo_generator_kwargs")
        metadata = {"global_step": ckpt.get("global_step"), "epoch": ckpt.get("epoch")}
        g_state = _split_prefixed(ckpt["state_dict"], prefixes["albedo_generator"])
        est_state = _split_prefixed(ckpt["state_dict"], prefixes["estimator"])
    else:
        raise AssetFormatError(f"{source}: unsupported checkpoint suffix {source.suffix!r} (.safetensors or .ckpt)")

    generator = None
    if g_state is not None:
        if not g_kwargs:
            raise AssetFormatError(f"{source}: albedo generator weights found but no constructor kwargs — set "
                                   "albedo_generator_kwargs (infer config key `albedo_generator`)")
        try:
            generator = AlbedoGenerator(**dict(g_kwargs))
        except (TypeError, ValueError) as err:
            raise AssetFormatError(f"{source}: albedo generator kwargs {g_kwargs!r} are invalid ({err})") from err
        _load_strict(generator, g_state, "albedo generator", source)
        generator.requires_grad_(False).eval()
    return InferenceWeights(generator, est_state, metadata, source)


def load_estimator_weights(estimator: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load the estimator part of an inference weights file (``.safetensors`` / ``.ckpt``) into ``estimator``,
    strictly (every key, every shape); returns the file's metadata.

    Raises:
        MissingAssetError: the file does not exist.
        AssetFormatError: the file is unreadable, holds no estimator, or its estimator differs from ``estimator``.
    """
    if not Path(path).is_file():
        raise MissingAssetError(
            f"estimator weights not found: {path} — the embedded estimator ships as "
            "checkpoints/embedded_estimator.safetensors (re-create it with `python train.py "
            "experiment=synthetic_estimator`), or set estimator.weights_path=null for an untrained estimator"
        )
    weights = load_inference_weights(path)
    if weights.estimator_state is None:
        raise AssetFormatError(f"{weights.source}: holds no estimator weights (expected keys 'estimator.*')")
    _load_strict(estimator, weights.estimator_state, "estimator", weights.source)
    return weights.metadata


# ------------------------------------------------------------------------------------------------------------------
# pipeline


def resample_uv(texture: torch.Tensor, resolution: Optional[int]) -> torch.Tensor:
    """Resize (N, C, R, R) UV maps to (N, C, resolution, resolution) (bilinear, antialiased); None/same = as is."""
    if resolution is None or texture.shape[-1] == resolution and texture.shape[-2] == resolution:
        return texture
    return F.interpolate(texture, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 1)


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
               light: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                                 torch.Tensor]:
        """Render the fit: returns (vertices (N, V, 3), shaded (N, 3, S, S), unlit (N, 3, S, S), alpha, landmarks).

        ``cam``/``light`` override the estimate's camera (N, 3) and SH light (N, 9, 3) (e.g. for turntables);
        renders are composited over white.
        """
        out = self.head(estimate.params)
        camera = WeakPerspectiveCamera(estimate.cam if cam is None else cam)
        sh = estimate.light if light is None else light
        shaded = self.renderer.render_world(out.vertices, camera, albedo, sh, landmarks=out.landmarks2d)
        flat = self.renderer(camera.transform_points(out.vertices), albedo, None)
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
    def generate(self, seeds: Sequence[int], psi: Optional[float] = None) -> FaceResult:
        """Seeds → z → W+ → :meth:`from_ws` (same seed, same face, whatever the batch)."""
        z = self.latents(seeds)
        return self.from_ws(self.mapping(z, psi), z=z)


def build_pipeline(
    teacher: Teacher,
    head: HeadModel,
    estimator: Optional[nn.Module],
    checkpoint: Optional[str | os.PathLike],
    allow_no_checkpoint: bool = False,
    render_size: int = 256,
    uv_resolution: int = 256,
    albedo_generator_kwargs: Optional[Mapping[str, Any]] = None,
    checkpoint_prefixes: Optional[Mapping[str, Sequence[str]]] = None,
    device: torch.device | str = "cpu",
    world: Optional[Mapping[str, Any]] = None,
) -> FacePipeline:
    """Assemble a :class:`FacePipeline` and load its weights.

    Args:
        teacher, head, estimator: built parts (Hydra instantiates them from ``teacher``, ``flame``, ``estimator``).
        checkpoint: ``.safetensors`` export or Lightning ``.ckpt``; None needs ``allow_no_checkpoint``.
        allow_no_checkpoint: accept ``checkpoint=None`` → unwrapped-texture albedo, untrained estimator weights.
        render_size, uv_resolution: see :class:`FacePipeline`.
        albedo_generator_kwargs, checkpoint_prefixes: see :func:`load_inference_weights`.
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
        weights = load_inference_weights(checkpoint, albedo_generator_kwargs, checkpoint_prefixes)
        if world is not None and weights.metadata.get("world"):
            check_world(weights.metadata["world"], world, str(weights.source))
        generator = weights.albedo_generator
        if weights.estimator_state is not None:
            if estimator is None:
                log.warning("%s holds estimator weights but estimator=null (oracle): they are not used",
                            weights.source)
            else:
                _load_strict(estimator, weights.estimator_state, "estimator", weights.source)
        if generator is not None and generator.w_dim != teacher.w_dim:
            raise AssetFormatError(f"{weights.source}: G_A has w_dim={generator.w_dim} but the teacher has "
                                   f"w_dim={teacher.w_dim}; use the teacher the checkpoint was trained with")
    pipeline = FacePipeline(teacher, head, estimator, generator, render_size=render_size, uv_resolution=uv_resolution)
    return pipeline.to(device)
