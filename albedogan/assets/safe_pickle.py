"""Allow-listed unpickling: official checkpoints and model files are pickles, and a pickle can run any code.

Every pickle-based loader in albedogan goes through :class:`RestrictedUnpickler` with an explicit table of the
globals the format may reference. Anything else (``os.system``, ``builtins.eval``, NVIDIA's persistence code, ...)
raises :class:`UnsafePickleError` naming the file and the refused global. Tensors that a pickle stores as nested
``torch.save`` blobs are loaded with ``torch.load(weights_only=True)`` (:func:`load_torch_bytes`), never with the
unsafe ``torch.storage._load_from_bytes``.

Standard allow-list pieces live here (:data:`NUMPY_GLOBALS`, :data:`CONTAINER_GLOBALS`); each loader adds the
stand-in classes its format needs.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

__all__ = [
    "CONTAINER_GLOBALS",
    "NUMPY_GLOBALS",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "load_torch_bytes",
    "restricted_loads",
    "restricted_load_file",
]

Global = tuple[str, str]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global that is not on the loader's allow-list (or is malformed)."""


def load_torch_bytes(blob: bytes) -> Any:
    """Safe replacement for ``torch.storage._load_from_bytes``: ``torch.load(..., weights_only=True)``."""
    try:
        return torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises several types for bad blobs
        raise UnsafePickleError(f"embedded torch blob could not be loaded safely: {err}") from err


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    """Safe twin of ``numpy.core.multiarray.scalar`` refusing object dtypes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"refusing numpy scalar of dtype {dtype!r}")
    if data is None:
        data = b"\0" * dtype.itemsize
    if not isinstance(data, (bytes, bytearray)):
        # Python-2 pickles decoded with latin1 give str
        data = str(data).encode("latin1")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_reconstruct(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refusing ndarray subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _safe_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    return dtype


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Restricted twin of ``copyreg._reconstructor`` (the Python-2 ``copy_reg`` object protocol)."""
    if base is object:
        return object.__new__(cls)
    if base in (dict, list, set, tuple):
        obj = base.__new__(cls, state)
        base.__init__(obj, state)
        return obj
    raise UnsafePickleError(f"refusing object reconstruction of {cls!r} on base {base!r}")


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Safe twin of ``_codecs.encode``, which protocol-2 pickles from Python 3 use to store ``bytes``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise UnsafePickleError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode(encoding)


NUMPY_GLOBALS: dict[Global, Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
}
"""Globals needed to rebuild numpy arrays, dtypes and scalars (object arrays may only hold allow-listed objects)."""

CONTAINER_GLOBALS: dict[Global, Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("collections", "OrderedDict"): OrderedDict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _codecs_encode,
}
"""Harmless builtin containers and the restricted object reconstructor."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves globals only through an explicit allow-list.

    Args:
        file: binary file object to read.
        allowed: ``{(module, name): object}``; Python-2 names (``copy_reg``, ``__builtin__``) are mapped to their
            Python-3 equivalents before lookup.
        source: how the data is named in errors (usually the file path).
        encoding: how Python-2 ``str`` objects are decoded (``latin1`` keeps numpy buffers intact).
        persistent_load: optional handler for persistent ids; without it any persistent id is refused.
    """

    def __init__(
        self,
        file: io.BufferedIOBase,
        allowed: Mapping[Global, Any],
        source: str = "<bytes>",
        encoding: str = "latin1",
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file, encoding=encoding, fix_imports=False)
        self._allowed = dict(allowed)
        self._source = source
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle API
        key = (module, name)
        if key not in self._allowed:
            key = _compat_pickle.NAME_MAPPING.get(key, (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if key not in self._allowed:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global '{module}.{name}': it is not on this format's allow-list. "
                "The file is not in the expected format, or it was crafted to run code; do not load it."
            )
        return self._allowed[key]

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle API
        if self._persistent is None:
            raise UnsafePickleError(f"{self._source}: unexpected persistent id {pid!r} in pickle")
        return self._persistent(pid)


def restricted_loads(
    data: bytes,
    allowed: Mapping[Global, Any],
    source: str = "<bytes>",
    encoding: str = "latin1",
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``data`` through :class:`RestrictedUnpickler`; any failure becomes :class:`UnsafePickleError`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed, source, encoding, persistent_load).load()
    except UnsafePickleError as err:
        if source in str(err):
            raise
        raise UnsafePickleError(f"{source}: {err}") from err  # e.g. a corrupt embedded torch blob
    except RecursionError as err:
        raise UnsafePickleError(f"{source}: pickle nests too deeply") from err
    except Exception as err:  # truncated / corrupt data raise many different types
        raise UnsafePickleError(f"{source}: not a readable pickle of the expected format ({type(err).__name__}: {err})") from err


def restricted_load_file(path: str | os.PathLike, allowed: Mapping[Global, Any], encoding: str = "latin1", **kw: Any) -> Any:
    """Read ``path`` and unpickle it with :func:`restricted_loads`."""
    path = Path(path)
    return restricted_loads(path.read_bytes(), allowed, source=str(path), encoding=encoding, **kw)


# keep ``copyreg`` referenced so linters do not strip the import used in documentation/tests
_ = copyreg
