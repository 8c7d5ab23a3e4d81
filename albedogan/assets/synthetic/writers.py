"""Writers of the official FLAME asset formats, used to write the embedded synthetic head so that it is read back
through exactly the readers of the official files (``albedogan.assets.flame_model`` / ``landmark_embedding`` /
``uv_template`` / ``uv_mask``). Every writer writes atomically and reproduces the official byte structure."""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np
import torch

from albedogan.assets.flame_model import KINTREE_ROOT, FlameModelData
from albedogan.assets.landmark_embedding import LandmarkEmbedding
from albedogan.assets.obj import write_obj
from albedogan.assets.synthetic.py2_pickle import ChRecord, CscRecord, Py2PickleWriter
from albedogan.assets.uv_template import UVTemplate
from albedogan.utils.io import atomic_write_bytes

__all__ = ["flame_model_to_pickle_bytes", "landmark_embedding_to_npy_bytes", "write_flame_model",
           "write_landmark_embedding", "write_uv_mask", "write_uv_template"]


def flame_model_to_pickle_bytes(data: FlameModelData, *, chumpy: bool = True) -> bytes:
    """Serialise ``data`` as the bytes of an official-format ``generic_model.pkl`` (see :func:`write_flame_model`)."""
    kintree = np.stack([data.parents, np.arange(data.n_joints)]).astype(np.int64)
    kintree[0, 0] = KINTREE_ROOT
    payload = {
        "J_regressor": CscRecord.from_dense(data.J_regressor),
        "f": data.faces.astype(np.uint32),
        "kintree_table": kintree,
        "J": data.J_regressor @ data.v_template,
        "weights": data.lbs_weights,
        "posedirs": data.posedirs,
        "v_template": data.v_template,
        "shapedirs": ChRecord(data.shapedirs) if chumpy else data.shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    return Py2PickleWriter().dumps(payload)


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
    write_obj(path, vertices, faces, uv.verts_uvs, uv.faces_uvs)


def write_uv_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write ``mask`` ((H, W) float in [0, 1]) as an 8-bit RGBA PNG like the official masks (R=G=B=mask, A=255)."""
    import imageio.v3 as iio

    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2:
        raise ValueError(f"write_uv_mask: expected an (H, W) mask, got shape {mask.shape}")
    grey = np.round(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    atomic_write_bytes(path, iio.imwrite("<bytes>", rgba, extension=".png"))
