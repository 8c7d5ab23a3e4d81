"""Safe reading of official PyTorch checkpoints and strict key tables shared by the network converters.

``torch.load`` is only ever called with ``weights_only=True``: a checkpoint whose pickle references anything but
tensors and plain containers (e.g. an ``os.system`` reduce) is refused before any of it runs. Key checks produce
one :class:`CheckpointKeyError` naming the file and every missing / unexpected key.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file
from albedogan.assets.safe_pickle import UnsafePickleError

__all__ = [
    "CheckpointKeyError",
    "check_state_dict_keys",
    "load_state_dict_strict",
    "load_torch_checkpoint",
    "select_entry",
]

# BatchNorm's step counter: harmless if absent from a file (torch rebuilds it) and never used at inference.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


class CheckpointKeyError(AssetFormatError):
    """A checkpoint's state dict does not match the expected key table.

    Attributes:
        source: the file (and entry) that was read.
        missing: keys the model needs that the file lacks.
        unexpected: keys in the file that the model does not have.
        mismatched: ``(key, file shape, expected shape)`` triples.
    """

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
        hint: str = "",
    ) -> None:
        self.source = source
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched or [])

        def _fmt(keys: list[str]) -> str:
            shown = ", ".join(keys[:12])
            return shown + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")

        parts = [f"{source}: state dict does not match the expected layout."]
        if self.missing:
            parts.append(f"missing keys: {_fmt(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected keys: {_fmt(self.unexpected)}")
        if self.mismatched:
            parts.append(
                "shape mismatches: "
                + ", ".join(f"{k} (file {tuple(a)} vs expected {tuple(b)})" for k, a, b in self.mismatched[:12])
            )
        if hint:
            parts.append(hint)
        super().__init__("\n  ".join(parts))


def load_torch_checkpoint(path: str | os.PathLike | None, spec: AssetSpec) -> Any:
    """Load a ``torch.save`` file with ``weights_only=True`` on the CPU.

    Args:
        path: the checkpoint file.
        spec: asset description used in the missing-file message.

    Returns:
        The deserialised object (usually a dict of tensors or of state dicts).

    Raises:
        MissingAssetError: ``path`` does not exist.
        UnsafePickleError: the pickle references globals other than tensors/containers (it is never executed).
        AssetFormatError: the file is not a readable torch checkpoint.
    """
    file = require_file(path, spec)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(
            f"{file}: refused to load {spec.name}: the file references code or objects that a plain weights file "
            f"does not contain, so it was not deserialised. Use the official file. ({(str(err).splitlines() or [type(err).__name__])[0]})"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt archives raise RuntimeError, IndexError, KeyError, struct.error ...
        raise AssetFormatError(f"{file}: not a readable PyTorch checkpoint for {spec.name} ({err})") from err


def select_entry(obj: Any, key: str, source: str) -> Mapping[str, torch.Tensor]:
    """Return ``obj[key]`` as a state dict, or raise :class:`AssetFormatError` naming ``source`` and the keys found."""
    if not isinstance(obj, Mapping) or key not in obj:
        found = sorted(map(str, obj.keys()))[:20] if isinstance(obj, Mapping) else type(obj).__name__
        raise AssetFormatError(f"{source}: expected an entry '{key}', found {found}")
    entry = obj[key]
    if not isinstance(entry, Mapping):
        raise AssetFormatError(f"{source}: entry '{key}' is a {type(entry).__name__}, expected a state dict")
    return entry


def check_state_dict_keys(
    state: Mapping[str, Any],
    expected: Mapping[str, torch.Tensor],
    source: str,
    ignore_prefixes: Iterable[str] = (),
    hint: str = "",
) -> dict[str, torch.Tensor]:
    """Match a file's state dict against a module's, strictly.

    Args:
        state: the file's state dict.
        expected: the target module's ``state_dict()`` (gives names and shapes).
        source: file (and entry) named in errors.
        ignore_prefixes: file keys starting with these are dropped on purpose (documented per format).
        hint: extra advice appended to the error.

    Returns:
        Independent contiguous CPU tensors in ``expected``'s dtypes, ready for
        ``module.load_state_dict(..., strict=True, assign=True)`` (``expected`` may live on the ``meta`` device);
        BatchNorm ``num_batches_tracked`` counters missing from the file are set to 0.

    Raises:
        CheckpointKeyError: any missing, unexpected or mis-shaped key.
    """
    prefixes = tuple(ignore_prefixes)
    kept = {k: v for k, v in state.items() if not (prefixes and str(k).startswith(prefixes))}
    missing = [k for k in expected if k not in kept and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = sorted(str(k) for k in kept if k not in expected)
    mismatched = []
    for k, ref in expected.items():
        if k in kept:
            val = kept[k]
            if not isinstance(val, torch.Tensor):
                mismatched.append((k, ("not a tensor",), tuple(ref.shape)))  # type: ignore[arg-type]
            elif val.shape != ref.shape:
                mismatched.append((k, tuple(val.shape), tuple(ref.shape)))
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(source, missing, unexpected, mismatched, hint)
    out: dict[str, torch.Tensor] = {}
    for k, ref in expected.items():
        if k in kept:  # an independent contiguous CPU copy in the module's dtype (files may hold views / fp16)
            out[k] = kept[k].detach().to(device="cpu", dtype=ref.dtype, copy=True).contiguous()
        else:  # a BatchNorm step counter absent from the file
            out[k] = torch.zeros(ref.shape, dtype=ref.dtype)
    return out


def load_state_dict_strict(module: torch.nn.Module, state: Mapping[str, Any], source: str, hint: str = "") -> None:
    """The project's one strict loader: :func:`check_state_dict_keys` against ``module.state_dict()`` (every key,
    every shape, else one :class:`CheckpointKeyError` naming ``source``), then ``load_state_dict(strict=True)``.

    Args:
        module: the built network (any device; values are copied in its dtypes).
        state: the file's state dict.
        source: file (and part) named in errors.
        hint: extra advice appended to the error.
    """
    module.load_state_dict(check_state_dict_keys(state, module.state_dict(), source, hint=hint), strict=True)
