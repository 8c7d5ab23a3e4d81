"""Shared checks of the FLAME-format readers: array coercion with errors naming the key, restricted unpickling
naming the file, and the file-name prefix of every format error."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from albedogan.assets.locate import AssetFormatError
from albedogan.assets.safe_pickle import UnsafePickleError, restricted_loads

__all__ = ["FLAME_OBTAIN", "DECA_OBTAIN", "as_array", "check_shape", "check_index_range", "coerce_fields",
           "unpickle", "with_source"]

FLAME_OBTAIN = "https://flame.is.tue.mpg.de (register, accept the licence, download FLAME 2020 or 2023)"
DECA_OBTAIN = "DECA's data folder (https://github.com/yfeng95/DECA, `data/`)"


def as_array(value: Any, dtype: type, name: str, ndim: int) -> np.ndarray:
    """Convert ``value`` to a read-only C-contiguous array of ``dtype`` with ``ndim`` dims, or raise naming ``name``."""
    try:
        arr = np.asarray(value)
    except Exception as err:  # objects numpy cannot convert
        raise AssetFormatError(f"key '{name}': cannot be converted to an array ({err})") from err
    if arr.dtype.hasobject:
        raise AssetFormatError(f"key '{name}': expected a numeric array, got an object array")
    if np.issubdtype(dtype, np.integer):
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise AssetFormatError(f"key '{name}': expected an integer array, got dtype {arr.dtype}")
    elif not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise AssetFormatError(f"key '{name}': expected a floating-point array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise AssetFormatError(f"key '{name}': expected {ndim} dimensions, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if np.may_share_memory(out, arr):
        out = out.copy()
    if np.issubdtype(dtype, np.floating) and not np.all(np.isfinite(out)):
        raise AssetFormatError(f"key '{name}': contains NaN or infinite values")
    out.flags.writeable = False
    return out


def check_shape(arr: np.ndarray, expected: tuple[int | None, ...], name: str) -> None:
    if arr.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, arr.shape)):
        shown = tuple("*" if e is None else e for e in expected)
        raise AssetFormatError(f"key '{name}': expected shape {shown}, got {arr.shape}")


def check_index_range(arr: np.ndarray, upper: int, name: str, what: str) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise AssetFormatError(
            f"key '{name}': indices must lie in [0, {upper}) ({what}), got range [{arr.min()}, {arr.max()}]"
        )


def coerce_fields(obj: Any, table: dict[str, tuple[type, int]]) -> None:
    """Replace each dataclass field of a frozen ``obj`` by its checked, read-only array (dtype, ndim from ``table``)."""
    for f in fields(obj):
        dtype, ndim = table[f.name]
        object.__setattr__(obj, f.name, as_array(getattr(obj, f.name), dtype, f.name, ndim))


def unpickle(raw: bytes, allowed: dict[tuple[str, str], Any], path: Path) -> Any:
    """Restricted unpickling of ``raw``; every :class:`UnsafePickleError` names ``path``."""
    try:
        return restricted_loads(raw, allowed, source=str(path), encoding="latin1")
    except UnsafePickleError as err:
        if str(path) in str(err):
            raise
        raise UnsafePickleError(f"{path}: {err}") from err


def with_source(source: str | os.PathLike, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and prefix any :class:`AssetFormatError` with the file name (once)."""
    try:
        return fn()
    except AssetFormatError as err:
        msg = str(err)
        if msg.startswith(str(source)):
            raise
        raise AssetFormatError(f"{source}: {msg}") from err
