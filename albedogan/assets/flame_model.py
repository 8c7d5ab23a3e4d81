"""Reader of FLAME's ``generic_model.pkl`` (FLAME 2020 / 2023; formats in ``/work/shared/REFERENCE.md`` §4).

The file is a Python-2, protocol-2 pickle written by an SMPL-family ``save_model``: ``shapedirs`` is a
``chumpy.ch.Ch`` (or a plain array in re-saved copies), ``J_regressor`` a ``scipy.sparse.csc_matrix``. It is read
through :class:`~albedogan.assets.safe_pickle.RestrictedUnpickler` with stand-ins for chumpy and scipy: chumpy is
never imported and nothing in the file can run code. A missing file raises :class:`MissingAssetError`, wrong
content :class:`AssetFormatError` (naming the file and key), a pickle outside the allow-list
:class:`UnsafePickleError`.

Array letters: V vertices, F faces, K blendshapes (shape then expression), J joints, P = 9·(J−1) pose-corrective
features. Positions are metres in FLAME's frame (+Y up, +Z out of the face).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from albedogan.assets.arrays import FLAME_OBTAIN, check_index_range, check_shape, coerce_fields, unpickle, with_source
from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file
from albedogan.assets.safe_pickle import CONTAINER_GLOBALS, NUMPY_GLOBALS

__all__ = ["FLAME_MODEL_SPEC", "KINTREE_ROOT", "FlameModelData", "load_flame_model"]

FLAME_MODEL_SPEC = AssetSpec("FLAME model (generic_model.pkl)", "flame.model_path", FLAME_OBTAIN)

KINTREE_ROOT = 2**32 - 1
"""Parent id of the root joint in the official ``kintree_table`` (uint32 -1)."""
_UINT64_MINUS_ONE = 2**64 - 1


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
        coerce_fields(
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
        check_shape(self.v_template, (None, 3), "v_template")
        n_verts = self.v_template.shape[0]
        n_joints = self.parents.shape[0]
        if n_verts < 3:
            raise AssetFormatError(f"key 'v_template': expected at least 3 vertices, got {n_verts}")
        if n_joints < 1:
            raise AssetFormatError("key 'kintree_table': the model has no joints")
        check_shape(self.faces, (None, 3), "faces")
        check_index_range(self.faces, n_verts, "faces", f"V = {n_verts} vertices")
        check_shape(self.shapedirs, (n_verts, 3, None), "shapedirs")
        check_shape(self.posedirs, (n_verts, 3, 9 * (n_joints - 1)), "posedirs")
        check_shape(self.J_regressor, (n_joints, n_verts), "J_regressor")
        check_shape(self.lbs_weights, (n_verts, n_joints), "weights")
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
    is_root = np.array([int(p) in (-1, KINTREE_ROOT, _UINT64_MINUS_ONE) for p in parent_ids], dtype=bool)
    if n_joints == 0 or not is_root[0] or is_root[1:].any():
        raise AssetFormatError(
            f"key 'kintree_table': expected exactly one root (parent {KINTREE_ROOT} or -1) in column 0, "
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
    obj = unpickle(path.read_bytes(), _FLAME_PICKLE_GLOBALS, path)

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

    return with_source(path, build)
