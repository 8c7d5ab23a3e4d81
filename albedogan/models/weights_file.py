"""The inference-weights file: what training hands to inference (export, load, world record, strict loading).

One home for the format, used by the training callbacks (:class:`~albedogan.callbacks.export.ExportInferenceWeights`),
the estimator builders (``estimator.weights_path``) and inference (:func:`~albedogan.inference.pipeline.
build_pipeline`) — all of which import it downward.

Two file kinds are read:

* ``.safetensors`` export (:func:`export_inference_weights`): tensors ``albedo_generator.<key>`` (G_A, EMA) and
  optionally ``estimator.<key>``; the header metadata holds the JSON record ``{"format": "albedogan-inference",
  "version": 1, "albedo_generator": <AlbedoGenerator.init_kwargs>, "has_estimator": bool, "metadata": {...,
  "world": <world_record>}}``, so G_A is rebuilt from the file alone (the estimator is built from the config and
  its state is loaded strictly).
* Lightning ``.ckpt`` written by ``python train.py`` (read with ``torch.load(weights_only=True)``): the state-dict
  parts under :data:`CKPT_PREFIXES`, G_A's constructor arguments from ``hyper_parameters["albedo_generator_kwargs"]``
  (saved by :class:`~albedogan.models.albedogan_module.AlbedoGANModule`) and the world from the top-level entry
  :data:`CKPT_WORLD_ENTRY` (saved by the export callback).

Every load is strict (:func:`~albedogan.assets.convert.torch_checkpoint.load_state_dict_strict`): every key, every
shape, or one :class:`~albedogan.assets.locate.AssetFormatError` naming the file and the keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from albedogan.assets.convert.torch_checkpoint import load_state_dict_strict
from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.nets.albedo_generator import AlbedoGenerator
from albedogan.utils.io import atomic_write_bytes

__all__ = [
    "CKPT_PREFIXES",
    "CKPT_WORLD_ENTRY",
    "WEIGHTS_FORMAT",
    "WEIGHTS_VERSION",
    "WORLD_KEYS_FREE_AT_INFERENCE",
    "InferenceWeights",
    "check_world",
    "export_inference_weights",
    "load_estimator_weights",
    "load_inference_weights",
    "world_record",
]

WEIGHTS_FORMAT = "albedogan-inference"
WEIGHTS_VERSION = 1

#: State-dict prefixes of the parts inference reads from a training ``.ckpt`` — the attribute names of the
#: training modules (``AlbedoGANModule.G_ema`` is a :class:`~albedogan.models.ema.ModelEMA` holding ``.module``;
#: both training modules keep the estimator as ``estimator``). The only list of them.
CKPT_PREFIXES: dict[str, str] = {"albedo_generator": "G_ema.module.", "estimator": "estimator."}

#: Top-level ``.ckpt`` entry holding the world record (:func:`world_record`) of the run.
CKPT_WORLD_ENTRY = "albedogan_world"

WORLD_KEYS_FREE_AT_INFERENCE = frozenset({"teacher.image_size", "estimator.trainable"})
"""World settings inference may change without breaking the trained weights (render size, training-only flags)."""


@dataclass(frozen=True)
class InferenceWeights:
    """What an inference weights file holds.

    Attributes:
        albedo_generator: the rebuilt G_A (EMA weights) in eval mode on the CPU, or None when the file has none.
        estimator_state: the estimator's state_dict (CPU tensors) or None; load it into the config-built estimator.
        metadata: free-form JSON-compatible record (training step, ``world``, ...).
        source: the file it came from.
    """

    albedo_generator: Optional[AlbedoGenerator]
    estimator_state: Optional[dict[str, torch.Tensor]]
    metadata: dict[str, Any]
    source: Path


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


def _generator_of(module: nn.Module) -> Optional[AlbedoGenerator]:
    """G_A's EMA copy of a training module (``G_ema.module``), or ``module`` itself when it is a G_A."""
    if isinstance(module, AlbedoGenerator):
        return module
    ema = getattr(getattr(module, "G_ema", None), "module", None)
    return ema if isinstance(ema, AlbedoGenerator) else None


def export_inference_weights(
    module: nn.Module,
    path: str | os.PathLike,
    metadata: Optional[Mapping[str, Any]] = None,
    include_estimator: bool = True,
) -> Path:
    """Write G_A's EMA copy and the estimator of ``module`` to one safetensors file, atomically (a module with an
    estimator but no G_A, e.g. the estimator pre-training module, writes the estimator alone).

    Args:
        module: a training module (G_A's EMA as ``G_ema.module``, the estimator as ``estimator``; the attributes
            of :data:`CKPT_PREFIXES`), or an :class:`AlbedoGenerator` itself.
        path: output ``.safetensors`` file.
        metadata: extra JSON-serialisable record stored in the header (e.g. ``{"world": ..., "step": ...}``).
        include_estimator: also store the estimator's state_dict when the module has one.

    Returns:
        The written path.

    Raises:
        ValueError: when neither an albedo generator nor an estimator is found.
    """
    from safetensors.torch import save

    g = _generator_of(module)
    est = getattr(module, "estimator", None) if include_estimator and g is not module else None
    est = est if isinstance(est, nn.Module) else None
    if g is None and est is None:
        raise ValueError(f"export_inference_weights: {type(module).__name__} has neither an albedo generator "
                         "(G_ema.module, an AlbedoGenerator) nor an estimator")
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
    atomic_write_bytes(path, save(tensors, metadata={"albedogan": json.dumps(record, sort_keys=True)}))
    return Path(path)


def _part(state: Mapping[str, torch.Tensor], prefix: str) -> Optional[dict[str, torch.Tensor]]:
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return part or None


def _read_safetensors(source: Path) -> tuple[Optional[Mapping[str, Any]], dict[str, Any], dict[str, torch.Tensor]]:
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
    # file keys "albedo_generator.*" / "estimator.*" -> the training-module keys of CKPT_PREFIXES
    renames = {f"{part}.": prefix for part, prefix in CKPT_PREFIXES.items()}
    parts = {renames[p] + k[len(p):]: v for k, v in state.items() for p in renames if k.startswith(p)}
    return record.get("albedo_generator"), dict(record.get("metadata", {})), parts


def _read_ckpt(source: Path) -> tuple[Optional[Mapping[str, Any]], dict[str, Any], dict[str, torch.Tensor]]:
    try:
        ckpt = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise AssetFormatError(f"{source}: cannot read as a Lightning checkpoint with weights_only=True ({err})"
                               ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise AssetFormatError(f"{source}: no 'state_dict' in this .ckpt (is it a Lightning checkpoint?)")
    hparams = ckpt.get("hyper_parameters") or {}
    metadata: dict[str, Any] = {"global_step": ckpt.get("global_step"), "epoch": ckpt.get("epoch")}
    if ckpt.get(CKPT_WORLD_ENTRY):
        metadata["world"] = ckpt[CKPT_WORLD_ENTRY]
    return hparams.get("albedo_generator_kwargs"), metadata, dict(ckpt["state_dict"])


def load_inference_weights(path: str | os.PathLike) -> InferenceWeights:
    """Read a ``.safetensors`` export or a Lightning ``.ckpt`` from ``python train.py`` (see the module docstring).

    Returns:
        :class:`InferenceWeights` (G_A rebuilt and loaded strictly; the estimator state to load into the
        config-built estimator with :func:`load_estimator_weights` / ``load_state_dict_strict``).

    Raises:
        MissingAssetError: the file does not exist.
        AssetFormatError: not a supported file, G_A weights without constructor arguments, or keys/shapes that
            do not match.
    """
    source = Path(path)
    if not source.is_file():
        raise MissingAssetError(
            f"checkpoint not found: {source} — pass checkpoint=<file.safetensors|file.ckpt> (written by "
            "`python train.py`), or checkpoint=null allow_no_checkpoint=true for the unwrapped-texture mode"
        )
    if source.suffix == ".safetensors":
        g_kwargs, metadata, state = _read_safetensors(source)
    elif source.suffix == ".ckpt":
        g_kwargs, metadata, state = _read_ckpt(source)
    else:
        raise AssetFormatError(f"{source}: unsupported checkpoint suffix {source.suffix!r} (.safetensors or .ckpt)")
    g_state = _part(state, CKPT_PREFIXES["albedo_generator"])
    est_state = _part(state, CKPT_PREFIXES["estimator"])
    generator = None
    if g_state is not None:
        if not g_kwargs:
            raise AssetFormatError(
                f"{source}: albedo generator weights found but no constructor kwargs (hyper_parameters."
                "albedo_generator_kwargs) — the file predates them; export it again from a current training run")
        try:
            generator = AlbedoGenerator(**dict(g_kwargs))
        except (TypeError, ValueError) as err:
            raise AssetFormatError(f"{source}: albedo generator kwargs {g_kwargs!r} are invalid ({err})") from err
        load_state_dict_strict(generator, g_state, f"{source} (albedo generator)",
                               hint="check that the checkpoint was trained with the same model config")
        generator.requires_grad_(False).eval()
    return InferenceWeights(generator, est_state, metadata, source)


def load_estimator_weights(estimator: nn.Module, weights: InferenceWeights | str | os.PathLike) -> dict[str, Any]:
    """Load the estimator part of an inference weights file (or of already read :class:`InferenceWeights`) into
    ``estimator``, strictly (every key, every shape); returns the file's metadata.

    Raises:
        MissingAssetError: the file does not exist.
        AssetFormatError: the file is unreadable, holds no estimator, or its estimator differs from ``estimator``.
    """
    if not isinstance(weights, InferenceWeights):
        if not Path(weights).is_file():
            raise MissingAssetError(
                f"estimator weights not found: {weights} — the embedded estimator ships as "
                "checkpoints/embedded_estimator.safetensors (re-create it with `python train.py "
                "experiment=synthetic_estimator`), or set estimator.weights_path=null for an untrained estimator"
            )
        weights = load_inference_weights(weights)
    if weights.estimator_state is None:
        raise AssetFormatError(f"{weights.source}: holds no estimator weights (expected keys 'estimator.*')")
    load_state_dict_strict(estimator, weights.estimator_state, f"{weights.source} (estimator)",
                           hint="check that the checkpoint was trained with the same estimator config")
    return weights.metadata
