"""Safe readers and format-exact writers for the official FLAME asset files.

Files handled (formats in ``/work/shared/REFERENCE.md`` §4):

- ``generic_model.pkl`` (FLAME 2020 / 2023): a Python-2, protocol-2 pickle written by an SMPL-family ``save_model``.
  ``shapedirs`` is a ``chumpy.ch.Ch`` (or a plain array in re-saved copies), ``J_regressor`` a
  ``scipy.sparse.csc_matrix``. Read through :class:`~albedogan.assets.safe_pickle.RestrictedUnpickler` with
  stand-ins for chumpy and scipy: chumpy is never imported and nothing in the file can run code.
- ``landmark_embedding.npy`` (DECA / MICA): a ``.npy`` holding a 0-d object array whose item is a dict; the dynamic
  contour tables are torch tensors pickled over ``torch.storage._load_from_bytes``. The ``.npy`` header is parsed
  here and the payload goes through the restricted unpickler; tensor blobs are read with
  ``torch.load(weights_only=True)``.
- ``head_template.obj`` (DECA's UV template): ``v``, ``vt`` and ``f v/vt[/vn]`` records; only UVs and UV faces are used.
- ``uv_face_mask.png`` / ``uv_face_eye_mask.png``: 256² RGBA, mask = channel 0 / 255.

Every reader raises :class:`MissingAssetError` for a missing file, :class:`AssetFormatError` (naming the file and the
key) for wrong content, and :class:`UnsafePickleError` (naming the file) for pickles that reference anything outside
the allow-list or cannot be decoded. Every writer writes atomically and reproduces the official byte structure, so
synthetic assets exercise exactly the code path of the official ones.

Array letters: V vertices, F faces, K blendshapes (shape then expression), J joints, P = 9·(J−1) pose-corrective
features, T UV coordinates. Positions are metres in FLAME's frame (+Y up, +Z out of the face).
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file, require_files
from albedogan.assets.safe_pickle import (
    CONTAINER_GLOBALS,
    NUMPY_GLOBALS,
    UnsafePickleError,
    load_torch_bytes,
    restricted_loads,
)
from albedogan.utils.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "FLAME_MODEL_SPEC",
    "LANDMARK_EMBEDDING_SPEC",
    "UV_TEMPLATE_SPEC",
    "UV_FACE_MASK_SPEC",
    "UV_FACE_EYE_MASK_SPEC",
    "N_CONTOUR",
    "N_STATIC",
    "N_YAW_ROWS",
    "FlameModelData",
    "LandmarkEmbedding",
    "UVTemplate",
    "FlameAssetPaths",
    "FlameAssets",
    "load_flame_model",
    "write_flame_model",
    "load_landmark_embedding",
    "write_landmark_embedding",
    "load_uv_template",
    "write_uv_template",
    "load_uv_mask",
    "write_uv_mask",
    "load_flame_assets",
]

N_CONTOUR = 17
"""Contour (jaw-line) landmarks of the 68-point scheme, chosen per head yaw."""
N_STATIC = 51
"""Inner-face landmarks of the 68-point scheme (brows, nose, eyes, mouth), fixed on the mesh."""
N_YAW_ROWS = 79
"""Rows of the dynamic contour table: yaw 0..39 degrees, then 40..78 for -1..-39 (and below)."""

_FLAME_OBTAIN = "https://flame.is.tue.mpg.de (register, accept the licence, download FLAME 2020 or 2023)"
_DECA_OBTAIN = "DECA's data folder (https://github.com/yfeng95/DECA, `data/`)"

FLAME_MODEL_SPEC = AssetSpec("FLAME model (generic_model.pkl)", "flame.model_path", _FLAME_OBTAIN)
LANDMARK_EMBEDDING_SPEC = AssetSpec(
    "FLAME landmark embedding (landmark_embedding.npy)", "flame.landmark_embedding_path", _DECA_OBTAIN
)
UV_TEMPLATE_SPEC = AssetSpec("FLAME UV template (DECA's head_template.obj)", "flame.uv_template_path", _DECA_OBTAIN)
UV_FACE_MASK_SPEC = AssetSpec(
    "FLAME UV face mask (uv_face_mask.png)", "flame.uv_face_mask_path", f"{_FLAME_OBTAIN} or {_DECA_OBTAIN}"
)
UV_FACE_EYE_MASK_SPEC = AssetSpec(
    "FLAME UV face+eye mask (uv_face_eye_mask.png)", "flame.uv_face_eye_mask_path", f"{_FLAME_OBTAIN} or {_DECA_OBTAIN}"
)

_UINT32_MINUS_ONE = 2**32 - 1
_UINT64_MINUS_ONE = 2**64 - 1


# ----------------------------------------------------------------------------------------------------------------
# shared array checks


def _as_array(value: Any, dtype: type, name: str, ndim: int) -> np.ndarray:
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


def _check_shape(arr: np.ndarray, expected: tuple[int | None, ...], name: str) -> None:
    if arr.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, arr.shape)):
        shown = tuple("*" if e is None else e for e in expected)
        raise AssetFormatError(f"key '{name}': expected shape {shown}, got {arr.shape}")


def _check_index_range(arr: np.ndarray, upper: int, name: str, what: str) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise AssetFormatError(
            f"key '{name}': indices must lie in [0, {upper}) ({what}), got range [{arr.min()}, {arr.max()}]"
        )


def _coerce_fields(obj: Any, table: dict[str, tuple[type, int]]) -> None:
    """Replace each dataclass field of a frozen ``obj`` by its checked, read-only array (dtype, ndim from ``table``)."""
    for f in fields(obj):
        dtype, ndim = table[f.name]
        object.__setattr__(obj, f.name, _as_array(getattr(obj, f.name), dtype, f.name, ndim))


def _unpickle(raw: bytes, allowed: dict[tuple[str, str], Any], path: Path) -> Any:
    """Restricted unpickling of ``raw``; every :class:`UnsafePickleError` names ``path``."""
    try:
        return restricted_loads(raw, allowed, source=str(path), encoding="latin1")
    except UnsafePickleError as err:
        if str(path) in str(err):
            raise
        raise UnsafePickleError(f"{path}: {err}") from err


def _with_source(source: str | os.PathLike, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and prefix any :class:`AssetFormatError` with the file name (once)."""
    try:
        return fn()
    except AssetFormatError as err:
        msg = str(err)
        if msg.startswith(str(source)):
            raise
        raise AssetFormatError(f"{source}: {msg}") from err


# ----------------------------------------------------------------------------------------------------------------
# FLAME model


@dataclass(frozen=True, eq=False)
class FlameModelData:
    """The arrays of a FLAME-format head model (official ``generic_model.pkl`` or the synthetic default).

    All arrays are converted to read-only, C-contiguous numpy arrays of the stated dtype on construction, and their
    shapes are checked against each other (no sizes are hard-coded except 3-vectors and 3×3 pose features).

    Attributes:
        v_template: (V, 3) float64 mean head in the rest pose, metres.
        faces: (F, 3) int64 triangle vertex indices in [0, V), counter-clockwise seen from outside.
        shapedirs: (V, 3, K) float64 linear blendshapes, metres per unit coefficient; the first ones are identity
            (300 in the official files), the rest expression (K = 400 officially: 300 + 100).
        posedirs: (V, 3, P) float64 pose-corrective blendshapes in the official layout: ``offset[v, c] =
            Σ_p posedirs[v, c, p]·feature[p]`` with ``feature = (R_j − I)`` of joints 1..J−1 flattened row-major,
            P = 9·(J−1) (36 for FLAME's 5 joints).
        J_regressor: (J, V) float64 dense joint regressor (rows usually sum to 1): ``joints = J_regressor @ vertices``.
        parents: (J,) int64 kinematic tree; ``parents[0] = -1`` (root) and ``0 <= parents[j] < j`` otherwise.
        lbs_weights: (V, J) float64 linear-blend-skinning weights (rows must sum to 1 within 1e-3).
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    lbs_weights: np.ndarray

    def __post_init__(self) -> None:
        _coerce_fields(
            self,
            {
                "v_template": (np.float64, 2),
                "faces": (np.int64, 2),
                "shapedirs": (np.float64, 3),
                "posedirs": (np.float64, 3),
                "J_regressor": (np.float64, 2),
                "parents": (np.int64, 1),
                "lbs_weights": (np.float64, 2),
            },
        )
        _check_shape(self.v_template, (None, 3), "v_template")
        n_verts = self.v_template.shape[0]
        n_joints = self.parents.shape[0]
        if n_verts < 3:
            raise AssetFormatError(f"key 'v_template': expected at least 3 vertices, got {n_verts}")
        if n_joints < 1:
            raise AssetFormatError("key 'kintree_table': the model has no joints")
        _check_shape(self.faces, (None, 3), "faces")
        _check_index_range(self.faces, n_verts, "faces", f"V = {n_verts} vertices")
        _check_shape(self.shapedirs, (n_verts, 3, None), "shapedirs")
        _check_shape(self.posedirs, (n_verts, 3, 9 * (n_joints - 1)), "posedirs")
        _check_shape(self.J_regressor, (n_joints, n_verts), "J_regressor")
        _check_shape(self.lbs_weights, (n_verts, n_joints), "weights")
        row_sums = self.lbs_weights.sum(axis=1)
        if np.abs(row_sums - 1.0).max() > 1e-3:
            worst = int(np.abs(row_sums - 1.0).argmax())
            raise AssetFormatError(
                f"key 'weights': skinning weights must sum to 1 per vertex; vertex {worst} sums to {row_sums[worst]}"
            )
        if self.parents[0] != -1:
            raise AssetFormatError(f"key 'kintree_table': joint 0 must be the root (parent -1), got {self.parents[0]}")
        rest = self.parents[1:]
        if rest.size and np.any((rest < 0) | (rest >= np.arange(1, n_joints))):
            raise AssetFormatError(
                f"key 'kintree_table': every non-root joint j needs a parent in [0, j) (topological order), "
                f"got parents {self.parents.tolist()}"
            )

    @property
    def n_vertices(self) -> int:
        """V."""
        return int(self.v_template.shape[0])

    @property
    def n_joints(self) -> int:
        """J."""
        return int(self.parents.shape[0])

    @property
    def n_blendshapes(self) -> int:
        """K = identity + expression blendshapes stored in ``shapedirs``."""
        return int(self.shapedirs.shape[2])


class _ChumpyArrayStandIn:
    """Allow-listed stand-in for ``chumpy.ch.Ch``: keeps only the array ``x`` from the pickled state."""

    x: np.ndarray

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("x"), np.ndarray):
            raise AssetFormatError("a chumpy.ch.Ch object without an array 'x' in its state")
        self.x = state["x"]


class _CscMatrixStandIn:
    """Allow-listed stand-in for ``scipy.sparse.csc_matrix``: keeps the CSC arrays from the pickled state."""

    state: dict

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise AssetFormatError("a scipy csc_matrix whose pickled state is not a dict")
        self.state = state

    def to_dense(self, name: str) -> np.ndarray:
        """Dense (rows, cols) float64 matrix; malformed CSC data raises :class:`AssetFormatError` naming ``name``."""
        import scipy.sparse

        st = self.state
        shape = st.get("_shape", st.get("shape"))
        try:
            data, indices, indptr = (np.asarray(st[k]) for k in ("data", "indices", "indptr"))
            shape = tuple(int(s) for s in shape)
            matrix = scipy.sparse.csc_matrix((data, indices, indptr), shape=shape)
            matrix.check_format(full_check=True)
            return np.asarray(matrix.toarray(), dtype=np.float64)
        except Exception as err:  # KeyError, TypeError, ValueError from scipy
            raise AssetFormatError(f"key '{name}': not a valid sparse CSC matrix ({type(err).__name__}: {err})") from err


_FLAME_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    **CONTAINER_GLOBALS,
    ("builtins", "object"): object,
    ("chumpy.ch", "Ch"): _ChumpyArrayStandIn,
    ("chumpy", "Ch"): _ChumpyArrayStandIn,
    ("scipy.sparse.csc", "csc_matrix"): _CscMatrixStandIn,
    ("scipy.sparse._csc", "csc_matrix"): _CscMatrixStandIn,
}
"""Everything a FLAME ``generic_model.pkl`` (chumpy or re-saved plain variant) may reference."""

_FLAME_REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")


def _plain_array(value: Any, name: str) -> Any:
    if isinstance(value, _ChumpyArrayStandIn):
        return value.x
    if isinstance(value, _CscMatrixStandIn):
        return value.to_dense(name)
    return value


def _parents_from_kintree(kintree: Any) -> np.ndarray:
    """(2, J) kintree table (row 0 parent ids, root = uint32 −1; row 1 joint ids) → (J,) parents, root −1."""
    table = np.asarray(kintree)
    if table.dtype.hasobject or not np.issubdtype(table.dtype, np.integer) or table.ndim != 2 or table.shape[0] != 2:
        raise AssetFormatError(f"key 'kintree_table': expected a (2, J) integer array, got {table.dtype} {table.shape}")
    parent_ids = table[0].astype(np.int64) if table.dtype != np.uint64 else table[0].astype(object)
    joint_ids = table[1].astype(np.int64)
    n_joints = table.shape[1]
    is_root = np.array([int(p) in (-1, _UINT32_MINUS_ONE, _UINT64_MINUS_ONE) for p in parent_ids], dtype=bool)
    if n_joints == 0 or not is_root[0] or is_root[1:].any():
        raise AssetFormatError(
            f"key 'kintree_table': expected exactly one root (parent {_UINT32_MINUS_ONE} or -1) in column 0, "
            f"got parents {[int(p) for p in parent_ids]}"
        )
    column_of = {int(j): i for i, j in enumerate(joint_ids)}
    if len(column_of) != n_joints:
        raise AssetFormatError(f"key 'kintree_table': joint ids repeat: {joint_ids.tolist()}")
    parents = [-1]
    for p in parent_ids[1:]:  # J is tiny (5 for FLAME)
        if int(p) not in column_of:
            raise AssetFormatError(f"key 'kintree_table': parent id {int(p)} is not a joint id {joint_ids.tolist()}")
        parents.append(column_of[int(p)])
    return np.asarray(parents, dtype=np.int64)


def load_flame_model(path: str | os.PathLike) -> FlameModelData:
    """Read a FLAME ``generic_model.pkl`` (2020 / 2023; chumpy or plain-array variant) without chumpy.

    Args:
        path: the pickle file.

    Returns:
        The model arrays; ``parents[0] == -1`` and ``J_regressor`` dense.

    Raises:
        MissingAssetError: the file does not exist (the message says where to get it).
        UnsafePickleError: the pickle references a global outside the FLAME allow-list, or is truncated/corrupt.
        AssetFormatError: keys are missing or arrays have inconsistent shapes (message names the file and key).
    """
    path = require_file(path, FLAME_MODEL_SPEC)
    obj = _unpickle(path.read_bytes(), _FLAME_PICKLE_GLOBALS, path)

    def build() -> FlameModelData:
        if not isinstance(obj, dict):
            raise AssetFormatError(f"expected a pickled dict of FLAME arrays, got {type(obj).__name__}")
        missing = [k for k in _FLAME_REQUIRED_KEYS if k not in obj]
        if missing:
            raise AssetFormatError(
                f"missing key(s) {missing} (found {sorted(map(str, obj))}); is this a FLAME generic_model.pkl?"
            )
        return FlameModelData(
            v_template=_plain_array(obj["v_template"], "v_template"),
            faces=_plain_array(obj["f"], "f"),
            shapedirs=_plain_array(obj["shapedirs"], "shapedirs"),
            posedirs=_plain_array(obj["posedirs"], "posedirs"),
            J_regressor=_plain_array(obj["J_regressor"], "J_regressor"),
            parents=_parents_from_kintree(_plain_array(obj["kintree_table"], "kintree_table")),
            lbs_weights=_plain_array(obj["weights"], "weights"),
        )

    return _with_source(path, build)


class _Py2PickleWriter:
    """Emit a protocol-2 pickle the way Python 2's ``cPickle`` does (``str`` as BINSTRING, ``copy_reg``,
    ``__builtin__`` and ``numpy.core.multiarray`` globals), without importing chumpy or touching ``sys.modules``.

    Supported values: None, bool, int, float, str/bytes (Python-2 ``str``), tuple, list, dict, numpy arrays and
    dtypes (numeric only), sets, and the two marker records :class:`_ChRecord` and :class:`_CscRecord`.
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

    def _ch(self, record: "_ChRecord") -> None:
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

    def _csc(self, record: "_CscRecord") -> None:
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
        elif isinstance(obj, _ChRecord):
            self._ch(obj)
        elif isinstance(obj, _CscRecord):
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
class _ChRecord:
    x: np.ndarray


@dataclass(frozen=True)
class _CscRecord:
    shape: tuple[int, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "_CscRecord":
        rows, cols = np.nonzero(dense.T)  # column-major order: (col, row) pairs sorted by column then row
        counts = np.bincount(rows, minlength=dense.shape[1])
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return cls(
            shape=(int(dense.shape[0]), int(dense.shape[1])),
            data=np.ascontiguousarray(dense.T[rows, cols], dtype=np.float64),
            indices=cols.astype(np.int32),
            indptr=indptr,
        )


def flame_model_to_pickle_bytes(data: FlameModelData, *, chumpy: bool = True) -> bytes:
    """Serialise ``data`` as the bytes of an official-format ``generic_model.pkl`` (see :func:`write_flame_model`)."""
    kintree = np.stack([data.parents, np.arange(data.n_joints)]).astype(np.int64)
    kintree[0, 0] = _UINT32_MINUS_ONE
    payload = {
        "J_regressor": _CscRecord.from_dense(data.J_regressor),
        "f": data.faces.astype(np.uint32),
        "kintree_table": kintree,
        "J": data.J_regressor @ data.v_template,
        "weights": data.lbs_weights,
        "posedirs": data.posedirs,
        "v_template": data.v_template,
        "shapedirs": _ChRecord(data.shapedirs) if chumpy else data.shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    return _Py2PickleWriter().dumps(payload)


def write_flame_model(path: str | os.PathLike, data: FlameModelData, *, chumpy: bool = True) -> None:
    """Write ``data`` as an official-format FLAME ``generic_model.pkl`` (atomically).

    The bytes are a protocol-2 pickle as Python 2's SMPL-family ``save_model`` produces: a dict with keys
    ``J_regressor`` (``scipy.sparse.csc.csc_matrix``), ``f`` (uint32), ``kintree_table`` (int64, root parent
    4294967295), ``J``, ``weights``, ``posedirs``, ``v_template``, ``shapedirs``, ``bs_style`` = 'lbs',
    ``bs_type`` = 'lrotmin'. Globals referenced: ``copy_reg._reconstructor``, ``chumpy.ch.Ch``,
    ``__builtin__.object``, ``__builtin__.set`` (chumpy variant only), ``scipy.sparse.csc.csc_matrix``,
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``.

    Args:
        path: destination file.
        data: the model.
        chumpy: True writes ``shapedirs`` as a ``chumpy.ch.Ch`` (the official files); False writes a plain
            array (copies re-saved without chumpy).
    """
    atomic_write_bytes(path, flame_model_to_pickle_bytes(data, chumpy=chumpy))


# ----------------------------------------------------------------------------------------------------------------
# landmark embedding


@dataclass(frozen=True, eq=False)
class LandmarkEmbedding:
    """Barycentric landmark embedding on the FLAME mesh (DECA / MICA ``landmark_embedding.npy``).

    A landmark is ``Σ_k bary[k] · vertices[faces[face_idx, k]]``. Arrays are read-only after construction.

    Attributes:
        static_lmk_faces_idx: (51,) int64 face indices of the inner-face landmarks (68-point indices 17..67).
        static_lmk_bary_coords: (51, 3) float64 barycentric weights (rows sum to 1).
        dynamic_lmk_faces_idx: (79, 17) int64 contour faces per yaw row (row = yaw for 0..39 degrees, 39 − yaw
            for −1..−39, 78 below; see :mod:`albedogan.flame.landmarks`).
        dynamic_lmk_bary_coords: (79, 17, 3) float64 barycentric weights of the contour landmarks.
        full_lmk_faces_idx: (68,) int64 faces of the fixed 68-landmark set (3D evaluation, NoW).
        full_lmk_bary_coords: (68, 3) float64 barycentric weights of the fixed set.
    """

    static_lmk_faces_idx: np.ndarray
    static_lmk_bary_coords: np.ndarray
    dynamic_lmk_faces_idx: np.ndarray
    dynamic_lmk_bary_coords: np.ndarray
    full_lmk_faces_idx: np.ndarray
    full_lmk_bary_coords: np.ndarray

    def __post_init__(self) -> None:
        table = {
            "static_lmk_faces_idx": (np.int64, 1),
            "static_lmk_bary_coords": (np.float64, 2),
            "dynamic_lmk_faces_idx": (np.int64, 2),
            "dynamic_lmk_bary_coords": (np.float64, 3),
            "full_lmk_faces_idx": (np.int64, 1),
            "full_lmk_bary_coords": (np.float64, 2),
        }
        _coerce_fields(self, table)
        _check_shape(self.static_lmk_faces_idx, (N_STATIC,), "static_lmk_faces_idx")
        _check_shape(self.static_lmk_bary_coords, (N_STATIC, 3), "static_lmk_bary_coords")
        _check_shape(self.dynamic_lmk_faces_idx, (N_YAW_ROWS, N_CONTOUR), "dynamic_lmk_faces_idx")
        _check_shape(self.dynamic_lmk_bary_coords, (N_YAW_ROWS, N_CONTOUR, 3), "dynamic_lmk_bary_coords")
        _check_shape(self.full_lmk_faces_idx, (N_CONTOUR + N_STATIC,), "full_lmk_faces_idx")
        _check_shape(self.full_lmk_bary_coords, (N_CONTOUR + N_STATIC, 3), "full_lmk_bary_coords")
        for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
            if getattr(self, name).min() < 0:
                raise AssetFormatError(f"key '{name}': negative face index")

    def check_faces(self, n_faces: int) -> None:
        """Raise :class:`AssetFormatError` unless every face index is < ``n_faces`` (F of the mesh it sits on)."""
        for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
            _check_index_range(getattr(self, name), n_faces, name, f"the mesh has F = {n_faces} faces")


def _rebuild_tensor_v2(storage: Any, storage_offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """Allow-listed twin of ``torch._utils._rebuild_tensor_v2``: a plain CPU tensor view of a safely loaded storage."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor rebuilt from a {type(storage).__name__}, expected a torch storage")
    if backward_hooks:
        raise UnsafePickleError("tensor with backward hooks refused")
    tensor = torch.empty(0, dtype=storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8)
    source = storage._untyped_storage if isinstance(storage, torch.TypedStorage) else storage
    return tensor.set_(source, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_from_type_v2(func: Any, new_type: Any, args: tuple, state: Any) -> torch.Tensor:
    """Allow-listed twin of ``torch._tensor._rebuild_from_type_v2`` for plain tensors only."""
    if func is not _rebuild_tensor_v2 or new_type is not torch.Tensor or state:
        raise UnsafePickleError("only plain torch.Tensor objects may be rebuilt from this file")
    return func(*args)


def _load_storage_blob(blob: Any) -> Any:
    """Allow-listed twin of ``torch.storage._load_from_bytes``: ``torch.load(weights_only=True)`` of the blob."""
    if isinstance(blob, str):  # a Python-2 style str decoded with latin1
        blob = blob.encode("latin1")
    if not isinstance(blob, (bytes, bytearray)):
        raise UnsafePickleError(f"torch storage blob must be bytes, got {type(blob).__name__}")
    return load_torch_bytes(bytes(blob))


_LANDMARK_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    **CONTAINER_GLOBALS,
    ("torch.storage", "_load_from_bytes"): _load_storage_blob,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
}
"""What a DECA/MICA ``landmark_embedding.npy`` may reference (numpy arrays, torch tensors rebuilt safely)."""

_NPY_MAGIC = b"\x93NUMPY"


def _read_npy_pickle_payload(path: Path) -> tuple[dict, bytes]:
    """Parse the ``.npy`` header of ``path``; return (header dict, bytes after the header)."""
    raw = path.read_bytes()
    if len(raw) < 10 or not raw.startswith(_NPY_MAGIC):
        raise AssetFormatError(f"{path}: not a .npy file (bad magic bytes)")
    major = raw[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", raw[8:10]), 10
    elif major in (2, 3) and len(raw) >= 12:
        (hlen,), start = struct.unpack("<I", raw[8:12]), 12
    else:
        raise AssetFormatError(f"{path}: unsupported .npy format version {major}")
    if len(raw) < start + hlen:
        raise AssetFormatError(f"{path}: truncated .npy header")
    try:
        header = ast.literal_eval(raw[start : start + hlen].decode("utf8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError) as err:
        raise AssetFormatError(f"{path}: unreadable .npy header ({err})") from err
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        raise AssetFormatError(f"{path}: .npy header lacks descr/fortran_order/shape: {header!r}")
    return header, raw[start + hlen :]


def _landmark_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def load_landmark_embedding(path: str | os.PathLike) -> LandmarkEmbedding:
    """Read DECA / MICA ``landmark_embedding.npy`` without ``np.load(allow_pickle=True)``.

    The ``.npy`` header is parsed here; the pickle payload goes through the restricted unpickler (numpy arrays,
    torch tensors whose storage blobs are loaded with ``torch.load(weights_only=True)``). Leading singleton
    dimensions (``full_lmk_faces_idx`` is stored as (1, 68)) are dropped.

    Raises:
        MissingAssetError: the file does not exist.
        UnsafePickleError: the payload references a global outside the allow-list, or is truncated/corrupt.
        AssetFormatError: bad header, wrong keys or shapes (message names the file and key).
    """
    path = require_file(path, LANDMARK_EMBEDDING_SPEC)
    header, payload = _read_npy_pickle_payload(path)
    if header["descr"] != "|O" or tuple(header["shape"]) != ():
        raise AssetFormatError(
            f"{path}: expected a 0-d object array holding a dict (descr '|O', shape ()), "
            f"got descr {header['descr']!r}, shape {header['shape']!r}"
        )
    array = _unpickle(payload, _LANDMARK_PICKLE_GLOBALS, path)

    def build() -> LandmarkEmbedding:
        content = array.item() if isinstance(array, np.ndarray) and array.shape == () else array
        if not isinstance(content, dict):
            raise AssetFormatError(f"expected a dict inside the array, got {type(content).__name__}")
        names = [f.name for f in fields(LandmarkEmbedding)]
        missing = [k for k in names if k not in content]
        if missing:
            raise AssetFormatError(f"missing key(s) {missing} (found {sorted(map(str, content))})")
        values = {}
        for name in names:
            arr = np.asarray(_landmark_value(content[name]))
            base = (1 if name.endswith("faces_idx") else 2) + (1 if name.startswith("dynamic") else 0)
            while arr.ndim > base and arr.shape[0] == 1:  # DECA stores the full set as (1, 68[, 3])
                arr = arr[0]
            values[name] = arr
        return LandmarkEmbedding(**values)

    return _with_source(path, build)


class _LegacyNumpyNamesPickler(pickle._Pickler):
    """Pure-Python pickler that writes numpy 2's ``numpy._core`` globals under their numpy-1 names
    (``numpy.core.multiarray``), as in the files DECA / MICA distribute; both spellings load."""

    def save_global(self, obj: Any, name: str | None = None) -> None:  # noqa: D102 - pickle API
        module = getattr(obj, "__module__", None) or ""
        if module == "numpy._core" or module.startswith("numpy._core."):
            qualname = name or obj.__qualname__
            legacy = "numpy.core" + module[len("numpy._core") :]
            self.write(pickle.GLOBAL + legacy.encode("ascii") + b"\n" + qualname.encode("ascii") + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def landmark_embedding_to_npy_bytes(emb: LandmarkEmbedding) -> bytes:
    """Bytes of a DECA-format ``landmark_embedding.npy`` for ``emb`` (see :func:`write_landmark_embedding`)."""
    content = {
        "static_lmk_faces_idx": np.array(emb.static_lmk_faces_idx, dtype=np.int64),
        "static_lmk_bary_coords": np.array(emb.static_lmk_bary_coords, dtype=np.float64),
        "dynamic_lmk_faces_idx": torch.tensor(emb.dynamic_lmk_faces_idx, dtype=torch.int64),
        "dynamic_lmk_bary_coords": torch.tensor(emb.dynamic_lmk_bary_coords, dtype=torch.float32),
        "full_lmk_faces_idx": np.array(emb.full_lmk_faces_idx, dtype=np.int64)[None],
        "full_lmk_bary_coords": np.array(emb.full_lmk_bary_coords, dtype=np.float32)[None],
    }
    holder = np.empty((), dtype=object)
    holder[()] = content
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": ()})
    # protocol 3 as np.save wrote it in Python-3 DECA; torch tensors pickle as _rebuild_tensor_v2 over
    # torch.storage._load_from_bytes(<legacy torch.save blob>)
    _LegacyNumpyNamesPickler(out, protocol=3).dump(holder)
    return out.getvalue()


def write_landmark_embedding(path: str | os.PathLike, emb: LandmarkEmbedding) -> None:
    """Write ``emb`` as a DECA-format ``landmark_embedding.npy`` (atomically).

    Layout: ``.npy`` v1.0 header (descr '|O', shape ()) + a protocol-3 pickle of a 0-d object array holding a dict:
    static entries as numpy (int64, float64), dynamic entries as torch tensors (int64, float32), full entries as
    numpy with a leading batch dimension ((1, 68) int64, (1, 68, 3) float32) — DECA's dtypes, so float values are
    stored at float32 precision where DECA stores float32.
    """
    atomic_write_bytes(path, landmark_embedding_to_npy_bytes(emb))


# ----------------------------------------------------------------------------------------------------------------
# UV template


@dataclass(frozen=True, eq=False)
class UVTemplate:
    """FLAME's UV layout (from DECA's ``head_template.obj``).

    Attributes:
        verts_uvs: (T, 2) float32 texture coordinates (u right, v up) in [0, 1]; T = 5118 for DECA's template.
        faces_uvs: (F, 3) int64 per-face indices into ``verts_uvs``, same face order as the FLAME mesh.
    """

    verts_uvs: np.ndarray
    faces_uvs: np.ndarray

    def __post_init__(self) -> None:
        _coerce_fields(self, {"verts_uvs": (np.float32, 2), "faces_uvs": (np.int64, 2)})
        _check_shape(self.verts_uvs, (None, 2), "verts_uvs")
        _check_shape(self.faces_uvs, (None, 3), "faces_uvs")
        if self.verts_uvs.shape[0] == 0:
            raise AssetFormatError("key 'verts_uvs': no texture coordinates")
        if self.verts_uvs.min() < -1e-6 or self.verts_uvs.max() > 1 + 1e-6:
            raise AssetFormatError(
                f"key 'verts_uvs': UVs must lie in [0, 1], got [{self.verts_uvs.min()}, {self.verts_uvs.max()}]"
            )
        _check_index_range(self.faces_uvs, self.verts_uvs.shape[0], "faces_uvs", "T texture coordinates")


def load_uv_template(obj_path: str | os.PathLike) -> UVTemplate:
    """Read UVs and UV faces from DECA's ``head_template.obj`` (``f v/vt`` or ``f v/vt/vn``; positions ignored).

    Raises:
        MissingAssetError: the file does not exist.
        AssetFormatError: unreadable records, non-triangle faces, or no UVs (MICA's template of the same name has
            none: use DECA's).
    """
    path = require_file(obj_path, UV_TEMPLATE_SPEC)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise AssetFormatError(f"{path}: not a text OBJ file ({err})") from err
    uvs: list[list[float]] = []
    faces: list[list[int]] = []
    has_faces_without_uv = False
    for lineno, line in enumerate(text.splitlines(), 1):  # a file parser, not a hot path
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "vt":
                uvs.append([float(parts[1]), float(parts[2])])
            elif parts[0] == "f":
                corners = parts[1:]
                if len(corners) != 3:
                    raise ValueError(f"expected a triangle, got {len(corners)} corners")
                tex = [c.split("/")[1] if c.count("/") >= 1 else "" for c in corners]
                if any(t == "" for t in tex):
                    has_faces_without_uv = True
                    continue
                faces.append([int(t) - 1 for t in tex])
        except (ValueError, IndexError) as err:
            raise AssetFormatError(f"{path}:{lineno}: unreadable OBJ record {line.strip()!r} ({err})") from err
    if not uvs or has_faces_without_uv or not faces:
        raise AssetFormatError(
            f"{path}: the OBJ has no UV coordinates/UV faces ('vt' records and 'f v/vt' faces). MICA's "
            "head_template.obj has no UVs; use DECA's data/head_template.obj."
        )
    return _with_source(path, lambda: UVTemplate(np.asarray(uvs), np.asarray(faces)))


def write_uv_template(path: str | os.PathLike, uv: UVTemplate, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a DECA-style ``head_template.obj`` (atomically): ``v`` (V lines), ``vt`` (T lines), ``f v/vt`` (F lines).

    Args:
        path: destination ``.obj``.
        uv: the UV layout; ``uv.faces_uvs`` must have as many rows as ``faces``.
        vertices: (V, 3) float vertex positions (metres; informative only, readers ignore them).
        faces: (F, 3) int mesh faces (0-based), same order as ``uv.faces_uvs``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.shape != uv.faces_uvs.shape:
        raise ValueError(
            f"write_uv_template: need vertices (V, 3) and faces {uv.faces_uvs.shape}, got {vertices.shape}, {faces.shape}"
        )
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices.tolist()]
    lines += [f"vt {u:.9g} {v:.9g}" for u, v in uv.verts_uvs.tolist()]
    corners = np.stack([faces + 1, uv.faces_uvs + 1], axis=-1).reshape(-1, 6)  # (F, 3, 2) → (F, 6)
    lines += ["f {}/{} {}/{} {}/{}".format(*row) for row in corners.tolist()]
    atomic_write_text(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# UV masks


def load_uv_mask(png_path: str | os.PathLike, spec: AssetSpec = UV_FACE_MASK_SPEC) -> np.ndarray:
    """Read a UV mask PNG: (H, W) float32 in [0, 1] = channel 0 / max value (255 for 8-bit PNGs).

    Args:
        png_path: the PNG (grey, RGB or RGBA; official masks are 256² RGBA).
        spec: how the file is described if missing.
    """
    import imageio.v3 as iio

    path = require_file(png_path, spec)
    try:
        img = np.asarray(iio.imread(path.read_bytes(), extension=".png"))
    except Exception as err:  # imageio raises many types for corrupt images
        raise AssetFormatError(f"{path}: not a readable PNG image ({type(err).__name__}: {err})") from err
    if img.ndim == 3:
        img = img[..., 0]
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise AssetFormatError(f"{path}: expected an 8/16-bit (H, W[, C]) mask image, got {img.dtype} {img.shape}")
    return (img.astype(np.float32) / float(np.iinfo(img.dtype).max)).astype(np.float32)


def write_uv_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write ``mask`` ((H, W) float in [0, 1]) as an 8-bit RGBA PNG like the official masks (R=G=B=mask, A=255)."""
    import imageio.v3 as iio

    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2:
        raise ValueError(f"write_uv_mask: expected an (H, W) mask, got shape {mask.shape}")
    grey = np.round(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    atomic_write_bytes(path, iio.imwrite("<bytes>", rgba, extension=".png"))


# ----------------------------------------------------------------------------------------------------------------
# everything together


@dataclass(frozen=True)
class FlameAssetPaths:
    """Where the FLAME asset files are (config group ``flame``: ``flame.model_path`` etc.)."""

    model: Path
    landmark_embedding: Path
    uv_template: Path
    uv_face_mask: Path
    uv_face_eye_mask: Path


@dataclass(frozen=True, eq=False)
class FlameAssets:
    """All FLAME assets, loaded and cross-checked.

    Attributes:
        model: the head model.
        landmarks: the landmark embedding (face indices < F of ``model``).
        uv: the UV layout (as many UV faces as ``model.faces``).
        face_mask: (H, W) float32 in [0, 1] UV mask of the face region.
        face_eye_mask: (H, W) float32 in [0, 1] UV mask of face + eye region (same size as ``face_mask``).
    """

    model: FlameModelData
    landmarks: LandmarkEmbedding
    uv: UVTemplate
    face_mask: np.ndarray
    face_eye_mask: np.ndarray


def load_flame_assets(paths: FlameAssetPaths) -> FlameAssets:
    """Load and cross-check every FLAME asset.

    All files are checked first: if any is missing, ONE :class:`MissingAssetError` lists each missing file, the
    config key that sets it and where to obtain it.
    """
    model_p, lmk_p, uv_p, mask_p, eye_p = require_files(
        [
            (paths.model, FLAME_MODEL_SPEC),
            (paths.landmark_embedding, LANDMARK_EMBEDDING_SPEC),
            (paths.uv_template, UV_TEMPLATE_SPEC),
            (paths.uv_face_mask, UV_FACE_MASK_SPEC),
            (paths.uv_face_eye_mask, UV_FACE_EYE_MASK_SPEC),
        ]
    )
    model = load_flame_model(model_p)
    landmarks = load_landmark_embedding(lmk_p)
    _with_source(lmk_p, lambda: landmarks.check_faces(model.faces.shape[0]))
    uv = load_uv_template(uv_p)
    if uv.faces_uvs.shape[0] != model.faces.shape[0]:
        raise AssetFormatError(
            f"{uv_p}: {uv.faces_uvs.shape[0]} UV faces but the FLAME model {model_p} has {model.faces.shape[0]} faces; "
            "the UV template does not belong to this model"
        )
    face_mask = load_uv_mask(mask_p, UV_FACE_MASK_SPEC)
    face_eye_mask = load_uv_mask(eye_p, UV_FACE_EYE_MASK_SPEC)
    if face_mask.shape != face_eye_mask.shape:
        raise AssetFormatError(f"{eye_p}: mask size {face_eye_mask.shape} differs from {mask_p} {face_mask.shape}")
    return FlameAssets(model, landmarks, uv, face_mask, face_eye_mask)

