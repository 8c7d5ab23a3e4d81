"""Reader of DECA's ``head_template.obj`` (FLAME's UV layout): ``v``, ``vt`` and ``f v/vt[/vn]`` records; only UVs
and UV faces are used (T texture coordinates)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from albedogan.assets.arrays import DECA_OBTAIN, check_index_range, check_shape, coerce_fields, with_source
from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file

__all__ = ["UV_TEMPLATE_SPEC", "UVTemplate", "load_uv_template"]

UV_TEMPLATE_SPEC = AssetSpec("FLAME UV template (DECA's head_template.obj)", "flame.uv_template_path", DECA_OBTAIN)


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
        coerce_fields(self, {"verts_uvs": (np.float32, 2), "faces_uvs": (np.int64, 2)})
        check_shape(self.verts_uvs, (None, 2), "verts_uvs")
        check_shape(self.faces_uvs, (None, 3), "faces_uvs")
        if self.verts_uvs.shape[0] == 0:
            raise AssetFormatError("key 'verts_uvs': no texture coordinates")
        if self.verts_uvs.min() < -1e-6 or self.verts_uvs.max() > 1 + 1e-6:
            raise AssetFormatError(
                f"key 'verts_uvs': UVs must lie in [0, 1], got [{self.verts_uvs.min()}, {self.verts_uvs.max()}]"
            )
        check_index_range(self.faces_uvs, self.verts_uvs.shape[0], "faces_uvs", "T texture coordinates")


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
    return with_source(path, lambda: UVTemplate(np.asarray(uvs), np.asarray(faces)))
