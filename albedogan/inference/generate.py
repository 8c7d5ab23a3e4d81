"""``python infer.py mode=generate``: seeds → textured FLAME meshes, renders, parameters and a contact sheet.

Per face (folder ``<out>/seed<NNNN>/``): ``mesh.obj`` + ``mesh.mtl`` + ``mesh_albedo.png`` (the UV albedo),
``mesh.glb`` (texture embedded), ``params.npz`` (seed, z, w, shape, expression, pose, camera, light, …), ``render.png``
(shaded, in the teacher image's framing), ``albedo_render.png`` (unlit) and ``teacher.png``. Per run:
``contact_sheet.png`` (teacher | render | albedo-only render | UV albedo, one row per face); ``config.yaml`` is written
by the entry point. Same seed → same files, byte for byte, whatever other seeds are generated in the same run: each
seed is drawn and computed on its own (:meth:`FacePipeline.generate`) and PNG/OBJ/GLB bytes are reproducible.

Examples::

    python infer.py mode=generate                       # 8 faces, seeds 0..7, shipped checkpoint
    python infer.py mode=generate mode.seeds=[3,14,15] mode.truncation_psi=0.7 mode.uv_resolution=512
    python infer.py mode=generate mode.edit.direction=smile.npy mode.edit.strength=2
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch

from albedogan.inference.contact_sheet import save_contact_sheet
from albedogan.inference.editing import apply_direction, direction_from_labels, load_direction, save_direction
from albedogan.inference.export import export_glb, export_npz, export_obj, save_png
from albedogan.inference.pipeline import FacePipeline, FaceResult, resample_uv
from albedogan.structures import FaceEstimate
from albedogan.utils.logging import get_logger
from albedogan.utils.progress import progress_bar

__all__ = ["edit_direction", "face_arrays", "resolve_seeds", "run_generate", "write_face"]

log = get_logger(__name__)


def resolve_seeds(n: int, seeds: Optional[Sequence[int]], seed: int) -> list[int]:
    """Explicit ``seeds`` win; otherwise ``seed, seed + 1, …, seed + n - 1``."""
    if seeds is not None and len(seeds) > 0:
        out = [int(s) for s in seeds]
    else:
        if int(n) < 1:
            raise ValueError(f"generate: n must be >= 1 (got {n}) or give mode.seeds=[...]")
        out = list(range(int(seed), int(seed) + int(n)))
    if any(s < 0 for s in out):
        raise ValueError(f"generate: seeds must be non-negative integers, got {out}")
    return out


def face_arrays(result: FaceResult, index: int) -> dict[str, Any]:
    """The parameter record of face ``index`` (numpy-convertible, float32): latents, FLAME params, camera, light.

    Keys: ``z`` (z_dim,) or absent, ``w`` (num_ws, w_dim) or absent, ``shape`` (n_shape,), ``expression`` (n_exp,),
    ``pose`` (6,) = global (3) + jaw (3) axis-angle radians, ``global_pose``, ``jaw_pose``, ``neck_pose`` (3,),
    ``eye_pose`` (6,), ``camera`` (3,) ``[s, tx, ty]``, ``light`` (9, 3) SH.
    """
    p = result.estimate.params
    out: dict[str, Any] = {
        "shape": p.shape[index], "expression": p.expression[index],
        "pose": torch.cat([p.global_pose[index], p.jaw_pose[index]]),
        "global_pose": p.global_pose[index], "jaw_pose": p.jaw_pose[index], "neck_pose": p.neck_pose[index],
        "eye_pose": p.eye_pose[index], "camera": result.estimate.cam[index], "light": result.estimate.light[index],
    }
    if result.z is not None:
        out["z"] = result.z[index]
    if result.ws is not None:
        out["w"] = result.ws[index]
    return {k: v.detach().float().cpu() for k, v in out.items()}


def write_face(folder: str | os.PathLike, result: FaceResult, index: int, faces: torch.Tensor,
               verts_uvs: torch.Tensor, faces_uvs: torch.Tensor, uv_resolution: Optional[int] = None,
               extra: Optional[Mapping[str, Any]] = None, glb: bool = True,
               image_name: str = "teacher.png") -> list[Path]:
    """Write every per-face file of face ``index`` of ``result`` into ``folder``.

    Args:
        folder: output folder (created).
        result: the batch.
        index: which face.
        faces: (F, 3) long mesh faces; verts_uvs: (T, 2) UVs in [0, 1]; faces_uvs: (F, 3) long.
        uv_resolution: resample the albedo to this size (None = as generated).
        extra: more entries for ``params.npz`` (e.g. ``seed``, ``source``).
        glb: also write ``mesh.glb``.
        image_name: file name of the input image (``teacher.png``; reconstruct writes the aligned ``crop.png``).

    Returns:
        The written files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    warn_upsampling(uv_resolution, int(result.albedo.shape[-1]))
    albedo = resample_uv(result.albedo[index:index + 1].float(), uv_resolution)[0].cpu()  # (3, R, R)
    verts = result.vertices[index].float().cpu()
    written = export_obj(folder / "mesh.obj", verts, faces.cpu(), verts_uvs.cpu(), faces_uvs.cpu(), texture=albedo)
    if glb:
        written.append(export_glb(folder / "mesh.glb", verts, faces.cpu(), verts_uvs.cpu(), faces_uvs.cpu(), albedo))
    written.append(export_npz(folder / "params.npz", {**face_arrays(result, index), **dict(extra or {})}))
    written.append(save_png(folder / "render.png", result.render[index]))
    written.append(save_png(folder / "albedo_render.png", result.albedo_render[index]))
    written.append(save_png(folder / image_name, result.image[index]))
    return written


def warn_upsampling(requested: Optional[int], native: int) -> None:
    """Log once per (requested, native) pair when exports are resampled above the albedo's own resolution."""
    if requested is None or int(requested) <= native or (int(requested), native) in _UPSAMPLE_WARNED:
        return
    _UPSAMPLE_WARNED.add((int(requested), native))
    log.warning("uv_resolution=%d upsamples the %d² albedo this checkpoint produces (bilinear, no new detail); "
                "mode.uv_resolution=%d or null keeps its own resolution", int(requested), native, native)


_UPSAMPLE_WARNED: set[tuple[int, int]] = set()


def with_expression(estimate: FaceEstimate, offsets: Mapping[int, float]) -> FaceEstimate:
    """The same fit with ``offsets`` ``{component: amount}`` added to its expression coefficients (basis units)."""
    expression = estimate.params.expression.clone()
    for k, v in offsets.items():
        if not 0 <= int(k) < expression.shape[1]:
            raise ValueError(f"expression component {k} does not exist (the head has {expression.shape[1]}: "
                             f"0..{expression.shape[1] - 1})")
        expression[:, int(k)] += float(v)
    return dataclasses.replace(estimate, params=dataclasses.replace(estimate.params, expression=expression))


@torch.no_grad()
def _seed_labels(labels: Any) -> tuple[list[int], torch.Tensor]:
    """``{seed: label}`` (config mapping) or a JSON file holding one → (seeds, (N,) float labels)."""
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        try:
            labels = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"edit.labels: cannot read {path} as JSON {{seed: label}}: {err}") from err
    if not isinstance(labels, Mapping) or not labels:
        raise ValueError("edit.labels: expected a non-empty mapping {seed: label} or a JSON file holding one")
    try:
        seeds = [int(k) for k in labels]
        values = torch.tensor([float(v) for v in labels.values()])
    except (TypeError, ValueError) as err:
        raise ValueError(f"edit.labels: seeds must be integers and labels numbers ({err})") from err
    return seeds, values


def edit_direction(pipeline: FacePipeline, edit: Mapping[str, Any],
                   truncation_psi: Optional[float] = None) -> tuple[Optional[torch.Tensor], float]:
    """The w-space direction and strength of ``edit``: ``direction`` (a ``.npy`` file) or ``labels`` (``{seed:
    label}`` or a JSON file: the direction of :func:`~albedogan.inference.editing.direction_from_labels` over those
    seeds' latents, ``method`` mean_difference | least_squares, optionally written to ``save``)."""
    strength = float(edit.get("strength", 1.0) or 0.0)
    if edit.get("direction") and edit.get("labels"):
        raise ValueError("edit: give either edit.direction (a .npy file) or edit.labels, not both")
    if edit.get("direction"):
        return load_direction(edit["direction"], pipeline.teacher.w_dim, pipeline.teacher.num_ws), strength
    if edit.get("labels"):
        seeds, labels = _seed_labels(edit["labels"])
        ws = pipeline.mapping(pipeline.latents(seeds), truncation_psi)
        direction = direction_from_labels(ws.cpu(), labels, edit.get("method", "mean_difference"))
        if edit.get("save"):
            save_direction(edit["save"], direction)
        return direction, strength
    return None, 0.0


def run_generate(
    pipeline: FacePipeline,
    out: str | os.PathLike,
    n: int = 8,
    seeds: Optional[Sequence[int]] = None,
    seed: int = 0,
    truncation_psi: Optional[float] = None,
    uv_resolution: Optional[int] = None,
    edit: Optional[Mapping[str, Any]] = None,
    glb: bool = True,
    sheet_cell: int = 128,
    expression: Optional[Mapping[int, float]] = None,
    device: torch.device | str | None = None,
) -> Path:
    """Generate faces for seeds and write their files (see module docstring).

    Args:
        pipeline: the built pipeline (weights loaded).
        out: output folder.
        n: number of faces when ``seeds`` is not given (seeds ``seed .. seed + n - 1``).
        seeds: explicit seeds (each seed → one face, independent of the batch).
        seed: first seed (the run's ``seed``).
        truncation_psi: truncation toward the mean w (None = the teacher's default).
        uv_resolution: albedo resolution of the exports (None = G_A's).
        edit: ``{"direction": path.npy | None, "labels": {seed: label} | path.json | None, "method": str,
            "save": path.npy | None, "strength": float}`` (:func:`edit_direction`); strength 0 or neither a
            direction nor labels = no edit.
        glb: also write GLB files.
        sheet_cell: contact-sheet cell size in pixels.
        expression: ``{component: amount}`` added to every face's fitted expression coefficients (None = as
            fitted); the albedo is unchanged.
        device: moves the pipeline (None = leave it).

    Returns:
        The output folder.
    """
    if device is not None:
        pipeline = pipeline.to(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = resolve_seeds(n, seeds, seed)
    direction, strength = edit_direction(pipeline, edit or {}, truncation_psi)
    head = pipeline.head
    sheet_cols: list[list[torch.Tensor]] = [[], [], [], []]
    edit_ws = (lambda ws: apply_direction(ws, direction, strength)) if direction is not None and strength else None
    with progress_bar("generate", len(seed_list)) as advance:
        for s in seed_list:  # one seed per forward pass: its files do not depend on the other seeds
            result = pipeline.generate([s], truncation_psi, edit=edit_ws)
            if expression:
                result = pipeline.from_image(result.image, ws=result.ws, z=result.z,
                                             estimate=with_expression(result.estimate, expression))
            extra = {"seed": s, "truncation_psi": float("nan") if truncation_psi is None else truncation_psi,
                     "edit_strength": strength}
            write_face(out / f"seed{s:04d}", result, 0, head.faces, head.verts_uvs, head.faces_uvs,
                       uv_resolution, extra, glb=glb)
            advance(f"seed {s}")
            for col, t in zip(sheet_cols, (result.image, result.render, result.albedo_render, result.albedo)):
                col.append(t.float().cpu())
    sheet = save_contact_sheet(out / "contact_sheet.png", [torch.cat(c) for c in sheet_cols],
                               ["teacher", "render", "albedo render", "UV albedo"], cell=sheet_cell)
    log.info("generate: %d faces (seeds %s) -> %s (contact sheet %s)", len(seed_list),
             _seed_summary(seed_list), out, sheet)
    return out


def _seed_summary(seeds: Sequence[int]) -> str:
    if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ",".join(str(s) for s in seeds)
