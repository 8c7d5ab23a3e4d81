"""Reader of DECA / MICA's ``landmark_embedding.npy`` (formats in ``/work/shared/REFERENCE.md`` §4).

The file is a ``.npy`` holding a 0-d object array whose item is a dict; the dynamic contour tables are torch tensors
pickled over ``torch.storage._load_from_bytes``. The ``.npy`` header is parsed here and the payload goes through the
restricted unpickler; tensor blobs are read with ``torch.load(weights_only=True)``. Never ``np.load(allow_pickle)``.
"""

from __future__ import annotations

import ast
import os
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albedogan.assets.arrays import DECA_OBTAIN, check_index_range, check_shape, coerce_fields, unpickle, with_source
from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file
from albedogan.assets.safe_pickle import CONTAINER_GLOBALS, NUMPY_GLOBALS, UnsafePickleError, load_torch_bytes

__all__ = ["LANDMARK_EMBEDDING_SPEC", "N_CONTOUR", "N_STATIC", "N_YAW_ROWS", "LandmarkEmbedding",
           "load_landmark_embedding"]

N_CONTOUR = 17
"""Contour (jaw-line) landmarks of the 68-point scheme, chosen per head yaw."""
N_STATIC = 51
"""Inner-face landmarks of the 68-point scheme (brows, nose, eyes, mouth), fixed on the mesh."""
N_YAW_ROWS = 79
"""Rows of the dynamic contour table: yaw 0..39 degrees, then 40..78 for -1..-39 (and below)."""

LANDMARK_EMBEDDING_SPEC = AssetSpec(
    "FLAME landmark embedding (landmark_embedding.npy)", "flame.landmark_embedding_path", DECA_OBTAIN
)


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
        coerce_fields(self, table)
        check_shape(self.static_lmk_faces_idx, (N_STATIC,), "static_lmk_faces_idx")
        check_shape(self.static_lmk_bary_coords, (N_STATIC, 3), "static_lmk_bary_coords")
        check_shape(self.dynamic_lmk_faces_idx, (N_YAW_ROWS, N_CONTOUR), "dynamic_lmk_faces_idx")
        check_shape(self.dynamic_lmk_bary_coords, (N_YAW_ROWS, N_CONTOUR, 3), "dynamic_lmk_bary_coords")
        check_shape(self.full_lmk_faces_idx, (N_CONTOUR + N_STATIC,), "full_lmk_faces_idx")
        check_shape(self.full_lmk_bary_coords, (N_CONTOUR + N_STATIC, 3), "full_lmk_bary_coords")
        for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
            if getattr(self, name).min() < 0:
                raise AssetFormatError(f"key '{name}': negative face index")

    def check_faces(self, n_faces: int) -> None:
        """Raise :class:`AssetFormatError` unless every face index is < ``n_faces`` (F of the mesh it sits on)."""
        for name in ("static_lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
            check_index_range(getattr(self, name), n_faces, name, f"the mesh has F = {n_faces} faces")


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
    array = unpickle(payload, _LANDMARK_PICKLE_GLOBALS, path)

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

    return with_source(path, build)
