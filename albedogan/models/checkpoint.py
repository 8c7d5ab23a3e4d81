"""Validation of AlbedoGAN training checkpoints (Lightning ``.ckpt`` files written by ``python train.py``).

:func:`validate_training_checkpoint` reads a checkpoint with ``torch.load(weights_only=True)`` (through
:func:`albedogan.assets.convert.torch_checkpoint.load_torch_checkpoint`: nothing in the file is executed) and checks
that it is a complete, resumable training state: the Lightning entries (:data:`REQUIRED_ENTRIES`), a non-negative
integer ``global_step``, the trained parts of the module (:data:`TRAINED_PREFIXES`) with finite tensors, none of the
frozen parts that are rebuilt from the config (:data:`albedogan.models.albedogan_module.REBUILT_PREFIXES`), and one
optimiser state per optimiser. A truncated or corrupt file raises one :class:`~albedogan.assets.locate.AssetFormatError`
naming the file and what is wrong.

:class:`AtomicCheckpointIO` is the Lightning checkpoint plugin ``run_train`` uses: Lightning's own
``TorchCheckpointIO`` writes through an fsspec transaction whose temp file lives in ``$TMPDIR`` and is then
``shutil.move``d onto the target; when ``$TMPDIR`` and the output folder are on different filesystems (local ``/tmp``,
logs on NFS/Lustre) the rename fails with EXDEV and ``shutil.move`` copies *into the destination in place*, so a kill
during the copy leaves a truncated ``last.ckpt`` (the previous one already overwritten). The plugin writes the temp
file next to the target (:func:`albedogan.utils.io.atomic_write_with`) and renames it, on any filesystem layout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from albedogan.assets.convert.torch_checkpoint import load_torch_checkpoint
from albedogan.assets.locate import AssetFormatError, AssetSpec
from albedogan.models.albedogan_module import REBUILT_PREFIXES
from albedogan.utils.io import atomic_write_with

__all__ = ["REQUIRED_ENTRIES", "TRAINED_PREFIXES", "AtomicCheckpointIO", "TrainingCheckpoint", "validate_training_checkpoint"]

#: Top-level entries every resumable Lightning checkpoint of ``AlbedoGANModule`` holds.
REQUIRED_ENTRIES: tuple[str, ...] = ("epoch", "global_step", "state_dict", "loops", "optimizer_states",
                                     "hyper_parameters")

#: State-dict prefixes of the parts that training changes (G_A, its EMA, D, the estimator, the path-length mean);
#: ``G``, ``G_ema`` and ``D`` must always be present, the others depend on the configuration.
TRAINED_PREFIXES: tuple[str, ...] = ("G.", "G_ema.", "D.", "estimator.", "path_length.")
_MANDATORY_PREFIXES: tuple[str, ...] = ("G.", "G_ema.", "D.")

_SPEC = AssetSpec(name="AlbedoGAN training checkpoint", config_key="ckpt_path",
                  obtain="a training run (`python train.py ...` writes <run>/checkpoints/last.ckpt)")


@dataclass(frozen=True)
class TrainingCheckpoint:
    """A validated training checkpoint.

    Attributes:
        path: the file that was read.
        global_step: optimisation steps (training batches) done when it was written.
        epoch: Lightning epoch counter.
        state_dict: every saved tensor of the module (CPU, dtype as trained, usually float32), keyed as in
            ``AlbedoGANModule.state_dict()`` minus the rebuilt parts.
        num_optimizers: number of optimiser states (G_A, D and, with a trainable estimator, the estimator).
        hyper_parameters: the module's plain-valued hyper-parameters.
    """

    path: Path
    global_step: int
    epoch: int
    state_dict: Mapping[str, torch.Tensor]
    num_optimizers: int
    hyper_parameters: Mapping[str, Any]

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The tensors that training changes (keys starting with one of :data:`TRAINED_PREFIXES`)."""
        return {k: v for k, v in self.state_dict.items() if k.startswith(TRAINED_PREFIXES)}


def validate_training_checkpoint(path: str | os.PathLike) -> TrainingCheckpoint:
    """Load ``path`` safely and check that it is a complete, finite AlbedoGAN training state.

    Args:
        path: a Lightning ``.ckpt`` written by ``python train.py``.

    Returns:
        The checkpoint's :class:`TrainingCheckpoint`.

    Raises:
        MissingAssetError: the file does not exist.
        UnsafePickleError: the file references code (it is never executed).
        AssetFormatError: truncated / not a torch file, missing entries, no trained parts, rebuilt parts present,
            non-tensor or non-finite weights, or a bad ``global_step``; the message names the file and the problem.
    """
    file = Path(path)
    ckpt = load_torch_checkpoint(file, _SPEC)

    def bad(what: str) -> AssetFormatError:
        return AssetFormatError(f"{file}: not a usable AlbedoGAN training checkpoint: {what}. Resume from an "
                                f"earlier checkpoint in the same folder (step_*.ckpt) or restart the run.")

    if not isinstance(ckpt, Mapping):
        raise bad(f"top level is a {type(ckpt).__name__}, expected a dict")
    missing = [k for k in REQUIRED_ENTRIES if k not in ckpt]
    if missing:
        raise bad(f"missing entries {missing}")
    step, epoch = ckpt["global_step"], ckpt["epoch"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise bad(f"global_step = {step!r}, expected a non-negative int")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise bad(f"epoch = {epoch!r}, expected a non-negative int")
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping):
        raise bad(f"state_dict is a {type(state).__name__}")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise bad(f"state_dict entries that are not tensors: {not_tensors[:8]}")
    absent = [p.rstrip(".") for p in _MANDATORY_PREFIXES if not any(k.startswith(p) for k in state)]
    if absent:
        raise bad(f"state_dict has no weights for {absent}")
    rebuilt = [k for k in state if k.startswith(REBUILT_PREFIXES)]
    if rebuilt:
        raise bad(f"state_dict holds frozen parts that are rebuilt from the config: {rebuilt[:8]}")
    non_finite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if non_finite:
        raise bad(f"non-finite weights in {non_finite[:8]}")
    optimizers = ckpt["optimizer_states"]
    if not isinstance(optimizers, list) or not optimizers:
        raise bad("no optimiser states")
    hparams = ckpt["hyper_parameters"]
    if not isinstance(hparams, Mapping):
        raise bad(f"hyper_parameters is a {type(hparams).__name__}")
    return TrainingCheckpoint(path=file, global_step=step, epoch=epoch, state_dict=state,
                              num_optimizers=len(optimizers), hyper_parameters=hparams)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic on any filesystem layout (temp file in the target's folder,
    then ``os.replace``); URLs (``s3://`` ...) keep Lightning's fsspec path. Loading is Lightning's own."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` with ``torch.save``; a crash leaves the previous file or none.

        Raises:
            TypeError: ``storage_options`` given (not supported, as in ``TorchCheckpointIO``).
            OutputWriteError: the folder is not writable or the disk is full (names the file).
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint does not take storage_options "
                            f"(got {storage_options!r})")
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_write_with(path, lambda fh: torch.save(checkpoint, fh))
