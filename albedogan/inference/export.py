"""Mesh exporters: OBJ + MTL + PNG (Blender/MeshLab), binary glTF (GLB) and parameter ``.npz`` files.

Conventions: vertices (V, 3) float in metres (FLAME frame, +Y up); faces (F, 3) int indices into vertices;
verts_uvs (T, 2) in [0, 1] with v pointing up (OBJ's convention), faces_uvs (F, 3) indices into verts_uvs;
texture (3, H, W) float RGB in [0, 1] whose row 0 is the top of the image (v = 1). PNGs are written RGB — no
channel swap (the official code swaps red and blue twice). Every file is written atomically; within a set the
texture and material are written before the OBJ that references them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from PIL import Image

from albedogan.assets.obj import check_mesh, write_obj
from albedogan.utils.io import atomic_open, atomic_write_bytes, atomic_write_text

__all__ = ["texture_to_uint8", "save_png", "export_obj", "export_glb", "export_npz", "merge_uv_seams"]

ArrayLike = np.ndarray | torch.Tensor


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def texture_to_uint8(texture: ArrayLike) -> np.ndarray:
    """(3, H, W) or (H, W, 3) float RGB in [0, 1] → (H, W, 3) uint8 RGB (values clamped, rounded)."""
    tex = _np(texture).astype(np.float32)
    if tex.ndim != 3 or 3 not in (tex.shape[0], tex.shape[-1]):
        raise ValueError(f"texture: expected (3, H, W) or (H, W, 3), got {tex.shape}")
    if tex.shape[0] == 3 and tex.shape[-1] != 3:
        tex = tex.transpose(1, 2, 0)
    return np.clip(np.round(tex * 255.0), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike, image: ArrayLike) -> Path:
    """Write an RGB image ((3, H, W) / (H, W, 3) float in [0, 1], or (H, W, 3) uint8) as PNG, atomically.

    zlib level 1: lossless like any level; ~3x faster to write than PIL's default 6 for ~10% larger files (a 512²
    photo)."""
    arr = _np(image)
    rgb = arr if arr.dtype == np.uint8 else texture_to_uint8(arr)
    with atomic_open(path, "wb") as fh:
        Image.fromarray(rgb, mode="RGB").save(fh, format="PNG", compress_level=1)
    return Path(path)


def _prepare_mesh(
    vertices: ArrayLike, faces: ArrayLike, verts_uvs: ArrayLike | None, faces_uvs: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Convert to float64 / int64 numpy arrays and validate shapes and index ranges."""
    v = _np(vertices).astype(np.float64)
    f = _np(faces).astype(np.int64)
    vt = None if verts_uvs is None else _np(verts_uvs).astype(np.float64)
    ft = None if faces_uvs is None else _np(faces_uvs).astype(np.int64)
    check_mesh(v, f, vt, ft)
    return v, f, vt, ft


def export_obj(
    path: str | os.PathLike,
    vertices: ArrayLike,
    faces: ArrayLike,
    verts_uvs: ArrayLike | None = None,
    faces_uvs: ArrayLike | None = None,
    texture: ArrayLike | None = None,
    vertex_colors: ArrayLike | None = None,
) -> list[Path]:
    """Write a Wavefront OBJ, with ``<stem>.mtl`` and ``<stem>_albedo.png`` when a texture is given.

    Args:
        path: the ``.obj`` file.
        vertices: (V, 3) positions; faces: (F, 3) 0-based vertex indices.
        verts_uvs: (T, 2) UVs in [0, 1]; faces_uvs: (F, 3) UV indices.
        texture: (3, H, W) RGB in [0, 1] (row 0 = top = v 1); requires UVs.
        vertex_colors: (V, 3) RGB in [0, 1] written as ``v x y z r g b`` (MeshLab extension).

    Returns:
        The written files (OBJ first).
    """
    path = Path(path)
    v, f, vt, ft = _prepare_mesh(vertices, faces, verts_uvs, faces_uvs)
    if texture is not None and vt is None:
        raise ValueError("export_obj: a texture needs verts_uvs and faces_uvs")
    written: list[Path] = []
    mtllib = None
    if texture is not None:
        png = path.with_name(f"{path.stem}_albedo.png")
        mtl = path.with_suffix(".mtl")
        save_png(png, texture)
        atomic_write_text(
            mtl,
            "# albedogan material\nnewmtl albedo\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
            f"d 1.0\nillum 1\nmap_Kd {png.name}\n",
        )
        written += [png, mtl]
        mtllib = mtl.name
    colors = None if vertex_colors is None else _np(vertex_colors)
    write_obj(path, v, f, vt, ft, vertex_colors=colors, mtllib=mtllib,
              material=None if texture is None else "albedo", comment="albedogan mesh")
    return [path, *written]


def merge_uv_seams(
    vertices: np.ndarray, faces: np.ndarray, verts_uvs: np.ndarray, faces_uvs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split vertices along UV seams so each vertex has one UV (what glTF needs).

    Returns:
        (vertices (V', 3), uvs (V', 2), faces (F, 3)) where V' is the number of distinct (vertex, uv) pairs.
    """
    pairs = np.stack([faces.reshape(-1), faces_uvs.reshape(-1)], axis=1)  # (3F, 2)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return vertices[unique[:, 0]], verts_uvs[unique[:, 1]], inverse.reshape(-1, 3)


def export_glb(
    path: str | os.PathLike,
    vertices: ArrayLike,
    faces: ArrayLike,
    verts_uvs: ArrayLike | None = None,
    faces_uvs: ArrayLike | None = None,
    texture: ArrayLike | None = None,
) -> Path:
    """Write a binary glTF (GLB) through trimesh with the texture embedded (same arguments as :func:`export_obj`)."""
    import trimesh  # local: trimesh import is slow and only exporters need it

    v, f, vt, ft = _prepare_mesh(vertices, faces, verts_uvs, faces_uvs)
    if vt is not None:
        v, uv, f = merge_uv_seams(v, f, vt, ft)
        if texture is not None:
            image = Image.fromarray(texture_to_uint8(texture), mode="RGB")
            material = trimesh.visual.material.PBRMaterial(
                baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0
            )
            visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        else:
            visual = trimesh.visual.TextureVisuals(uv=uv)
    else:
        visual = None
    mesh = trimesh.Trimesh(vertices=v, faces=f, visual=visual, process=False)
    atomic_write_bytes(path, mesh.export(file_type="glb"))
    return Path(path)


def export_npz(path: str | os.PathLike, arrays: Mapping[str, ArrayLike | int | float | str]) -> Path:
    """Write named arrays (tensors converted to numpy; scalars and strings allowed) to an ``.npz``, atomically."""
    converted = {k: (_np(val) if isinstance(val, (torch.Tensor, np.ndarray)) else np.asarray(val)) for k, val in arrays.items()}
    buf = io.BytesIO()
    np.savez_compressed(buf, **converted)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
