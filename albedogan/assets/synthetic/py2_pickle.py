"""A Python-2 ``cPickle`` emitter (protocol 2), used to write the synthetic head's ``generic_model.pkl`` byte for
byte in the structure of the official FLAME files (chumpy ``Ch`` and scipy ``csc_matrix`` records included),
without importing chumpy or touching ``sys.modules``."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ChRecord", "CscRecord", "Py2PickleWriter"]


class Py2PickleWriter:
    """Emit a protocol-2 pickle the way Python 2's ``cPickle`` does (``str`` as BINSTRING, ``copy_reg``,
    ``__builtin__`` and ``numpy.core.multiarray`` globals), without importing chumpy or touching ``sys.modules``.

    Supported values: None, bool, int, float, str/bytes (Python-2 ``str``), tuple, list, dict, numpy arrays and
    dtypes (numeric only), sets, and the two marker records :class:`ChRecord` and :class:`CscRecord`.
    """

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._memo_size = 0
        self._memo: dict[Any, int] = {}

    # --- low level
    def _put(self, key: Any = None) -> None:
        idx = self._memo_size
        self._memo_size += 1
        if key is not None:
            self._memo[key] = idx
        self._out.write(b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx))

    def _get(self, key: Any) -> bool:
        idx = self._memo.get(key)
        if idx is None:
            return False
        self._out.write(b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx))
        return True

    def _global(self, module: str, name: str) -> None:
        key = ("global", module, name)
        if not self._get(key):
            self._out.write(b"c" + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n")
            self._put(key)

    def _int(self, value: int) -> None:
        if 0 <= value < 256:
            self._out.write(b"K" + bytes([value]))
        elif 0 <= value < 65536:
            self._out.write(b"M" + struct.pack("<H", value))
        elif -(2**31) <= value < 2**31:
            self._out.write(b"J" + struct.pack("<i", value))
        elif -(2**63) <= value < 2**63:  # cPickle writes 64-bit ints beyond int32 as text INT
            self._out.write(b"I" + str(value).encode("ascii") + b"\n")
        else:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self._out.write(b"\x8a" + bytes([len(raw)]) + raw)

    def _string(self, raw: bytes) -> None:
        if len(raw) < 256:
            self._out.write(b"U" + bytes([len(raw)]) + raw)
        else:
            self._out.write(b"T" + struct.pack("<I", len(raw)) + raw)
        self._put()

    def _tuple(self, items: tuple) -> None:
        if not items:
            self._out.write(b")")
            return
        if len(items) <= 3:
            for item in items:
                self.save(item)
            self._out.write({1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(items)])
        else:
            self._out.write(b"(")
            for item in items:
                self.save(item)
            self._out.write(b"t")
        self._put()

    def _dict(self, mapping: dict) -> None:
        self._out.write(b"}")
        self._put()
        if mapping:
            self._out.write(b"(")
            for key, value in mapping.items():
                self.save(key)
                self.save(value)
            self._out.write(b"u")

    def _list(self, items: list) -> None:
        self._out.write(b"]")
        self._put()
        if items:
            self._out.write(b"(")
            for item in items:
                self.save(item)
            self._out.write(b"e")

    def _dtype(self, dtype: np.dtype) -> None:
        if dtype.kind not in "biuf" or dtype.hasobject:
            raise TypeError(f"only numeric dtypes are written, got {dtype}")
        key = ("dtype", dtype.str)
        if self._get(key):
            return
        self._global("numpy", "dtype")
        self._tuple((f"{dtype.kind}{dtype.itemsize}", 0, 1))
        self._out.write(b"R")
        self._put(key)
        order = "|" if dtype.itemsize == 1 else "<"
        self._tuple((3, order, None, None, None, -1, -1, 0))
        self._out.write(b"b")

    def _ndarray(self, arr: np.ndarray) -> None:
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        data = np.ascontiguousarray(arr, dtype=dtype)
        self._global("numpy.core.multiarray", "_reconstruct")
        self._global("numpy", "ndarray")
        self._tuple((0,))
        self._string(b"b")
        self._out.write(b"\x87")
        self._put()
        self._out.write(b"R")
        self._put()
        self._out.write(b"(")
        self._int(1)
        self._tuple(tuple(int(s) for s in data.shape))
        self._dtype(data.dtype)
        self._out.write(b"\x89")  # not Fortran-ordered
        self._string(data.tobytes())
        self._out.write(b"t")
        self._put()
        self._out.write(b"b")

    def _set(self, items: set) -> None:
        self._global("__builtin__", "set")
        self._list(sorted(items, key=repr))
        self._out.write(b"\x85")
        self._put()
        self._out.write(b"R")
        self._put()

    def _ch(self, record: "ChRecord") -> None:
        # object.__reduce_ex__ through copy_reg: _reconstructor(Ch, object, None), then BUILD with __dict__ state
        self._global("copy_reg", "_reconstructor")
        self._global("chumpy.ch", "Ch")
        self._global("__builtin__", "object")
        self._out.write(b"N\x87")
        self._put()
        self._out.write(b"R")
        self._put()
        self._dict(
            {
                "x": record.x,
                "_dirty_vars": {"x"},
                "_itr": None,
                "_make_dense": False,
                "_make_sparse": False,
                "_depends_on_deps": {},
            }
        )
        self._out.write(b"b")

    def _csc(self, record: "CscRecord") -> None:
        self._global("scipy.sparse.csc", "csc_matrix")
        self._out.write(b")\x81")  # NEWOBJ with no arguments, then BUILD with the instance __dict__
        self._put()
        self._dict(
            {
                "_shape": record.shape,
                "maxprint": 50,
                "format": "csc",
                "data": record.data,
                "indices": record.indices,
                "indptr": record.indptr,
                "_has_sorted_indices": True,
            }
        )
        self._out.write(b"b")

    # --- dispatch
    def save(self, obj: Any) -> None:
        """Append ``obj`` to the stream."""
        if obj is None:
            self._out.write(b"N")
        elif isinstance(obj, (bool, np.bool_)):
            self._out.write(b"\x88" if obj else b"\x89")
        elif isinstance(obj, (int, np.integer)):
            self._int(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self._out.write(b"G" + struct.pack(">d", float(obj)))
        elif isinstance(obj, str):
            self._string(obj.encode("latin1"))
        elif isinstance(obj, bytes):
            self._string(obj)
        elif isinstance(obj, tuple):
            self._tuple(obj)
        elif isinstance(obj, list):
            self._list(obj)
        elif isinstance(obj, dict):
            self._dict(obj)
        elif isinstance(obj, (set, frozenset)):
            self._set(set(obj))
        elif isinstance(obj, np.ndarray):
            self._ndarray(obj)
        elif isinstance(obj, ChRecord):
            self._ch(obj)
        elif isinstance(obj, CscRecord):
            self._csc(obj)
        else:
            raise TypeError(f"cannot write {type(obj).__name__} into a Python-2 FLAME pickle")

    def dumps(self, obj: Any) -> bytes:
        """The complete pickle (PROTO 2 ... STOP) of ``obj``."""
        self._out.write(b"\x80\x02")
        self.save(obj)
        self._out.write(b".")
        return self._out.getvalue()


@dataclass(frozen=True)
class ChRecord:
    x: np.ndarray


@dataclass(frozen=True)
class CscRecord:
    shape: tuple[int, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "CscRecord":
        rows, cols = np.nonzero(dense.T)  # column-major order: (col, row) pairs sorted by column then row
        counts = np.bincount(rows, minlength=dense.shape[1])
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return cls(
            shape=(int(dense.shape[0]), int(dense.shape[1])),
            data=np.ascontiguousarray(dense.T[rows, cols], dtype=np.float64),
            indices=cols.astype(np.int32),
            indptr=indptr,
        )
