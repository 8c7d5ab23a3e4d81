"""NoW benchmark protocol (Sanyal et al., CVPR 2019) without psbody/chumpy/sbody.

Protocol (facts from the public ``now_evaluation`` code; REFERENCE §6):

* Scans are in **millimetres**; every error reported here is in mm.
* 7 landmarks, in this order: right-eye outer corner, right-eye inner corner, left-eye inner corner, left-eye outer
  corner, nose bottom (subnasale), right mouth corner, left mouth corner (subject's right/left; FLAME 68-point
  indices 36, 39, 42, 45, 33, 48, 54, i.e. ``lmk51[[19, 22, 25, 28, 16, 31, 37]]``).
* Crop: nose bridge = midpoint of the inner eye corners (1, 2); centre = nose bottom + 0.3·(bridge − nose bottom);
  radius = 1.4·(|lmk0 − lmk3| + |bridge − nose bottom|)/2; scan vertices with distance ≤ radius are kept.
* Alignment of the prediction onto the scan: similarity Procrustes on the 7 landmark pairs, then refinement of
  (scale, rotation, translation) minimising Σ (scan-vertex → predicted-surface distance)² over the cropped scan
  vertices. We refine with Gauss–Newton steps on that exact objective (closest points recomputed exactly each
  step, backtracking so the objective never increases). Unlike the official ``procrustes``
  (``reflection='best'``), reflections are never allowed.
* Error: unsigned distance from every cropped scan vertex to the aligned predicted surface; median, mean and
  (population) std pooled over all vertices of all evaluated scans.
* Metric variant: the prediction is converted to mm by its unit (``m``, ``cm``, ``mm``) and scale is never
  estimated (rigid Procrustes and rigid refinement). (The official metric script mixes the landmark-fitted
  scale into its translation; we fit the rigid transform consistently.)

Folder layout (``dataset_root``): ``imagepathsvalidation.txt`` / ``imagepathstest.txt`` (lines
``<subject>/<challenge>/<image>.jpg``), ``scans/<subject>/*.obj``, ``scans_lmks_onlypp/<subject>/*.pp`` (MeshLab
picked-points XML, 7 ``<point x= y= z=>`` entries). Predictions (``predictions_root``):
``<subject>/<challenge>/<image stem>.obj`` (or ``.ply``) + ``<image stem>.npy`` (or ``.txt``) holding the (7, 3)
landmarks in the mesh's frame and unit.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from albedogan.datamodules.eval_sets import NOW_IMAGE_LISTS
from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.assets.obj import write_obj
from albedogan.eval.geometry import apply_similarity, compose_similarity, point_to_mesh_distance, umeyama
from albedogan.flame.landmarks import NOW_LANDMARK_ROWS, now_landmarks
from albedogan.utils.io import atomic_write_text, atomic_write_with
from albedogan.utils.logging import get_logger

__all__ = [
    "NOW_CHALLENGES",
    "NOW_IMAGE_LISTS",
    "FLAME68_NOW_LANDMARKS",
    "UNIT_TO_MM",
    "now_landmarks_from_lmk68",
    "read_pp_landmarks",
    "read_now_landmarks",
    "read_mesh",
    "face_crop_sphere",
    "crop_scan",
    "Similarity",
    "align_prediction",
    "ScanEvaluation",
    "evaluate_scan",
    "NowSample",
    "list_now_samples",
    "ScanStats",
    "NowResult",
    "evaluate_now",
    "write_now_json",
    "write_now_markdown",
    "export_now_prediction",
]

log = get_logger(__name__)

NOW_CHALLENGES: tuple[str, ...] = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
FLAME68_NOW_LANDMARKS: tuple[int, ...] = tuple(17 + r for r in NOW_LANDMARK_ROWS)  # (36, 39, 42, 45, 33, 48, 54)
UNIT_TO_MM: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}

_MESH_EXTS = (".obj", ".ply")
_LMK_EXTS = (".npy", ".txt")


# ----------------------------------------------------------------------------------------------------------- landmarks
def now_landmarks_from_lmk68(lmk68: torch.Tensor) -> torch.Tensor:
    """Select NoW's 7 landmarks from 68-point (iBUG order) 3D landmarks.

    Args:
        lmk68: (..., 68, 3) float landmarks in the mesh frame (FLAME: metres).

    Returns:
        (..., 7, 3) landmarks in NoW's order (see the module docstring).
    """
    if lmk68.ndim < 2 or tuple(lmk68.shape[-2:]) != (68, 3):
        raise ValueError(f"lmk68: expected shape (..., 68, 3), got {tuple(lmk68.shape)}")
    return now_landmarks(lmk68)


def _check_landmarks(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.shape != (7, 3) or not np.all(np.isfinite(arr)):
        raise AssetFormatError(f"{source}: expected 7 finite 3D landmarks (shape (7, 3)), got shape {arr.shape}"
                               f"{'' if arr.shape != (7, 3) else ' with non-finite values'}")
    return arr.astype(np.float64)


def read_pp_landmarks(path: str | os.PathLike) -> np.ndarray:
    """Read a MeshLab picked-points ``.pp`` file (XML ``<PickedPoints><point x=".." y=".." z=".."/>...``).

    Points are returned in file order (NoW's landmark order); the XML is parsed properly, so headers of any
    length work (the official reader assumes the points sit on lines 9–15).

    Args:
        path: the ``.pp`` file.

    Returns:
        (7, 3) float64 landmarks in the scan's frame (mm for NoW scans).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if "<!ENTITY" in text:
        raise AssetFormatError(f"{path}: XML entity declarations are not accepted in a .pp landmark file")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise AssetFormatError(f"{path}: not a valid MeshLab .pp XML file ({err}); re-export it from MeshLab") from err
    pts = []
    for node in root.iter("point"):
        try:
            pts.append([float(node.attrib[a]) for a in ("x", "y", "z")])
        except (KeyError, ValueError) as err:
            raise AssetFormatError(f"{path}: <point> without numeric x/y/z attributes: {node.attrib}") from err
    return _check_landmarks(np.asarray(pts, dtype=np.float64).reshape(-1, 3), str(path))


def read_now_landmarks(path: str | os.PathLike) -> np.ndarray:
    """Read 7 landmarks from ``.pp`` (MeshLab XML), ``.npy`` (array (7, 3), no pickles) or ``.txt`` (7 rows x y z).

    Returns:
        (7, 3) float64 landmarks in the file's frame and unit.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pp":
        return read_pp_landmarks(path)
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise AssetFormatError(f"{path}: expected a plain numeric .npy array (7, 3): {err}") from err
        return _check_landmarks(np.asarray(arr, dtype=np.float64).reshape(arr.shape), str(path))
    if suffix == ".txt":
        try:
            arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise AssetFormatError(f"{path}: expected 7 lines of 'x y z' numbers: {err}") from err
        return _check_landmarks(arr, str(path))
    raise AssetFormatError(f"{path}: unsupported landmark file type {suffix!r}; use .pp, .npy or .txt")


def read_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load a triangle mesh (``.obj``/``.ply``; polygons are triangulated) without reordering its vertices.

    Returns:
        vertices: (V, 3) float64 in the file's unit; faces: (F, 3) int64 vertex indices.
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise MissingAssetError(f"mesh file not found: {path}")
    try:
        mesh = trimesh.load(path, process=False, force="mesh")
    except Exception as err:  # trimesh raises many types for corrupt files
        raise AssetFormatError(f"{path}: cannot read as a triangle mesh ({type(err).__name__}: {err})") from err
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise AssetFormatError(f"{path}: expected a non-empty triangle mesh, got vertices {v.shape}, faces {f.shape}")
    return v, f


# ---------------------------------------------------------------------------------------------------------------- crop
def face_crop_sphere(landmarks7: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NoW's face sphere from the scan's 7 landmarks.

    Args:
        landmarks7: (7, 3) float scan landmarks (mm), NoW order.

    Returns:
        centre: (3,) sphere centre; radius: () sphere radius (same unit).
    """
    if tuple(landmarks7.shape) != (7, 3):
        raise ValueError(f"landmarks7: expected shape (7, 3), got {tuple(landmarks7.shape)}")
    nose_bottom = landmarks7[4]
    bridge = 0.5 * (landmarks7[1] + landmarks7[2])
    centre = nose_bottom + 0.3 * (bridge - nose_bottom)
    radius = 1.4 * ((landmarks7[0] - landmarks7[3]).norm() + (bridge - nose_bottom).norm()) / 2
    return centre, radius


def crop_scan(vertices: torch.Tensor, landmarks7: torch.Tensor, faces: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Keep the scan vertices inside NoW's face sphere (distance ≤ radius).

    Args:
        vertices: (V, 3) float scan vertices (mm).
        landmarks7: (7, 3) scan landmarks, same frame.
        faces: optional (F, 3) int64 scan faces; faces with all three corners kept are re-indexed and returned.

    Returns:
        mask: (V,) bool kept vertices; kept: (V', 3) kept vertices; kept_faces: (F', 3) int64 or None.
    """
    centre, radius = face_crop_sphere(landmarks7.to(vertices))
    mask = (vertices - centre).norm(dim=-1) <= radius
    kept_faces = None
    if faces is not None:
        new_index = torch.cumsum(mask.long(), 0) - 1
        keep_f = mask[faces].all(1)
        kept_faces = new_index[faces[keep_f]]
    return mask, vertices[mask], kept_faces


# ----------------------------------------------------------------------------------------------------------- alignment
@dataclass(frozen=True)
class Similarity:
    """``x ↦ s·R·x + t`` mapping prediction coordinates (after unit conversion) to scan coordinates (mm).

    Attributes:
        s: () scale (1 in the metric variant); R: (3, 3) rotation; t: (3,) translation in mm.
        iterations: refinement iterations run; converged: whether the relative objective change fell below tol.
    """

    s: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    iterations: int = 0
    converged: bool = True


def _rotation_from_axis_angle(omega: torch.Tensor) -> torch.Tensor:
    """(3,) axis-angle → (3, 3) rotation matrix."""
    from pytorch3d.transforms import axis_angle_to_matrix

    return axis_angle_to_matrix(omega[None])[0]


def align_prediction(
    scan_points: torch.Tensor,
    scan_landmarks: torch.Tensor,
    pred_vertices: torch.Tensor,
    pred_faces: torch.Tensor,
    pred_landmarks: torch.Tensor,
    with_scale: bool = True,
    max_iters: int = 50,
    tol: float = 1e-8,
) -> Similarity:
    """Landmark Procrustes, then Gauss–Newton refinement of Σ (scan vertex → predicted surface distance)².

    Each refinement step linearises the similarity increment ``x ↦ c + (1+σ)·R(ω)·(x − c) + τ`` (``c`` = scan
    centroid) around the current exact closest points ``q_i``, with residual ``n_i·(p_i − q_i)`` where ``n_i`` is the
    unit direction from ``q_i`` to the scan point ``p_i`` (the face normal where they coincide): value and gradient
    of this residual equal those of the true distance, so the fixed point is a stationary point of NoW's objective.
    A step that does not decrease the exact objective is halved (up to 8 times); iteration stops when the relative
    decrease falls below ``tol``.

    Args:
        scan_points: (P, 3) float cropped scan vertices (mm).
        scan_landmarks: (7, 3) scan landmarks (mm).
        pred_vertices: (V, 3) predicted vertices, already in mm for the metric variant.
        pred_faces: (F, 3) int64 predicted faces.
        pred_landmarks: (7, 3) predicted landmarks in the frame of ``pred_vertices``.
        with_scale: estimate a scale (non-metric NoW) or not (metric NoW: σ = 0).
        max_iters: refinement iterations at most (0 = landmarks only).
        tol: relative decrease of the mean squared distance below which refinement stops.

    Returns:
        The :class:`Similarity` mapping ``pred_vertices`` onto the scan.
    """
    sim = umeyama(pred_landmarks, scan_landmarks, with_scale=with_scale)
    centre = scan_points.mean(0)

    def objective(sim_: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        verts = apply_similarity(pred_vertices, *sim_)
        dist, closest, face = point_to_mesh_distance(scan_points, verts, pred_faces)
        return float((dist ** 2).mean()), dist, closest, face, verts

    err, dist, closest, face, verts = objective(sim)
    extent = float((scan_points.amax(0) - scan_points.amin(0)).norm()) or 1.0
    it, converged = 0, max_iters == 0
    for it in range(1, max_iters + 1):  # Gauss–Newton iterations, each vectorised over all points
        if err <= (1e-10 * extent) ** 2:  # already an exact fit (up to round-off)
            converged, it = True, it - 1
            break
        tri = verts[pred_faces[face]]  # (P, 3, 3)
        fn = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        fn = fn / fn.norm(dim=1, keepdim=True).clamp_min(1e-30)
        r = scan_points - closest
        far = dist > 1e-9 * (1 + float(dist.max()))
        n = torch.where(far[:, None], r / dist.clamp_min(1e-30)[:, None], fn)  # (P, 3)
        x = closest - centre
        cols = [torch.linalg.cross(x, n), n]  # d/dω, d/dτ
        if with_scale:
            cols.insert(0, (n * x).sum(1, keepdim=True))  # d/dσ
        J = torch.cat(cols, 1)  # (P, 7) or (P, 6)
        b = (n * r).sum(1)  # (P,)
        delta = torch.linalg.lstsq(J, b[:, None]).solution[:, 0]
        sigma = delta[0] if with_scale else torch.zeros((), dtype=delta.dtype, device=delta.device)
        omega, tau = delta[-6:-3], delta[-3:]
        accepted = False
        for _ in range(8):  # backtracking on the exact objective
            s_inc = (1 + sigma).clamp(0.5, 2.0)
            R_inc = _rotation_from_axis_angle(omega)
            step = (s_inc, R_inc, centre + tau - s_inc * (R_inc @ centre))
            cand = compose_similarity(step, sim)
            new = objective(cand)
            if new[0] <= err:
                accepted = True
                break
            sigma, omega, tau = sigma / 2, omega / 2, tau / 2
        if not accepted:
            converged = True
            break
        prev = err
        sim = cand
        err, dist, closest, face, verts = new
        if prev - err <= tol * max(prev, 1e-30):
            converged = True
            break
    return Similarity(*sim, iterations=it, converged=converged)


@dataclass(frozen=True)
class ScanEvaluation:
    """Errors of one prediction against one scan.

    Attributes:
        distances: (P,) float64 numpy, mm, unsigned distance from each cropped scan vertex to the aligned prediction.
        cropped_scan: (P, 3) float64 numpy cropped scan vertices (mm).
        aligned_vertices: (V, 3) float64 numpy predicted vertices after alignment (mm, scan frame).
        similarity: the fitted :class:`Similarity`.
    """

    distances: np.ndarray
    cropped_scan: np.ndarray
    aligned_vertices: np.ndarray
    similarity: Similarity


def evaluate_scan(
    scan_vertices: np.ndarray | torch.Tensor,
    scan_landmarks: np.ndarray | torch.Tensor,
    pred_vertices: np.ndarray | torch.Tensor,
    pred_faces: np.ndarray | torch.Tensor,
    pred_landmarks: np.ndarray | torch.Tensor,
    metric: bool = False,
    pred_unit: str = "m",
    max_iters: int = 50,
    tol: float = 1e-8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> ScanEvaluation:
    """Crop, align and measure one prediction (the whole NoW per-image protocol).

    Args:
        scan_vertices: (V_s, 3) scan vertices in mm. scan_landmarks: (7, 3) in mm, NoW order.
        pred_vertices: (V, 3) predicted neutral mesh; pred_faces: (F, 3) int; pred_landmarks: (7, 3) in the
            prediction's frame and unit.
        metric: metric variant (no scale; ``pred_unit`` converts to mm). The non-metric variant ignores units.
        pred_unit: ``"m"`` (FLAME), ``"cm"`` or ``"mm"``; used by the metric variant only.
        max_iters, tol: refinement settings (see :func:`align_prediction`).
        device, dtype: where and in which precision to compute (float64 by default).

    Returns:
        A :class:`ScanEvaluation` (distances in mm).
    """
    if pred_unit not in UNIT_TO_MM:
        raise ValueError(f"pred_unit must be one of {sorted(UNIT_TO_MM)}, got {pred_unit!r}")

    def tt(x: np.ndarray | torch.Tensor, d: torch.dtype = dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, device=device).to(d)

    sv, sl = tt(scan_vertices), tt(scan_landmarks)
    pv, pf, pl = tt(pred_vertices), tt(pred_faces, torch.long), tt(pred_landmarks)
    if metric:
        pv, pl = pv * UNIT_TO_MM[pred_unit], pl * UNIT_TO_MM[pred_unit]
    _, cropped, _ = crop_scan(sv, sl)
    if cropped.shape[0] == 0:
        raise ValueError("the NoW face sphere contains no scan vertex; check that the scan landmarks belong to "
                         "this scan and are in its unit (mm)")
    sim = align_prediction(cropped, sl, pv, pf, pl, with_scale=not metric, max_iters=max_iters, tol=tol)
    aligned = apply_similarity(pv, sim.s, sim.R, sim.t)
    dist, _, _ = point_to_mesh_distance(cropped, aligned, pf)
    return ScanEvaluation(dist.cpu().double().numpy(), cropped.cpu().double().numpy(),
                          aligned.cpu().double().numpy(), sim)


# ------------------------------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class NowSample:
    """One line of a NoW image list, resolved to files (prediction paths are None when missing)."""

    subject: str
    challenge: str
    image: str
    scan_path: Path
    scan_landmarks_path: Path
    pred_mesh_path: Path | None
    pred_landmarks_path: Path | None

    @property
    def key(self) -> str:
        """``<subject>/<challenge>/<image stem>`` (how missing predictions are reported)."""
        return f"{self.subject}/{self.challenge}/{Path(self.image).stem}"


def _first_existing(stem: Path, exts: Sequence[str]) -> Path | None:
    for ext in exts:
        p = stem.with_name(stem.name + ext)
        if p.is_file():
            return p
    return None


def _single_file(folder: Path, patterns: Sequence[str], what: str) -> Path:
    found = sorted(p for pat in patterns for p in folder.glob(pat))
    if not found:
        raise MissingAssetError(f"no {what} ({', '.join(patterns)}) in {folder}; check the NoW dataset_root layout "
                                f"(scans/<subject>/*.obj, scans_lmks_onlypp/<subject>/*.pp)")
    if len(found) > 1:
        log.warning("several %s in %s; using %s", what, folder, found[0].name)
    return found[0]


def list_now_samples(
    dataset_root: str | os.PathLike,
    predictions_root: str | os.PathLike,
    split: str = "val",
    challenge: str = "",
    image_list: str | os.PathLike | None = None,
) -> list[NowSample]:
    """Resolve every image of a NoW split to its scan, scan landmarks and (if present) prediction files.

    Args:
        dataset_root: NoW folder holding the image lists, ``scans/`` and ``scans_lmks_onlypp/``.
        predictions_root: folder with ``<subject>/<challenge>/<stem>.{obj,ply}`` + ``.{npy,txt}``.
        split: ``"val"`` or ``"test"`` (selects the image list), ignored when ``image_list`` is given.
        challenge: ``""`` for all, or one of :data:`NOW_CHALLENGES`.
        image_list: explicit image list file.

    Returns:
        One :class:`NowSample` per listed image (in list order).
    """
    root, preds = Path(dataset_root), Path(predictions_root)
    if challenge and challenge not in NOW_CHALLENGES:
        raise ValueError(f"challenge must be '' or one of {NOW_CHALLENGES}, got {challenge!r}")
    if image_list is None:
        if split not in NOW_IMAGE_LISTS:
            raise ValueError(f"split must be one of {sorted(NOW_IMAGE_LISTS)}, got {split!r}")
        image_list = root / NOW_IMAGE_LISTS[split]
    image_list = Path(image_list)
    if not image_list.is_file():
        raise MissingAssetError(f"NoW image list not found: {image_list} (download it with the NoW dataset and "
                                f"place it in dataset_root)")
    samples: list[NowSample] = []
    scan_cache: dict[str, tuple[Path, Path]] = {}
    for n, line in enumerate(image_list.read_text().splitlines(), 1):
        parts = [p for p in re.split(r"[\\/]", line.strip()) if p]
        if not parts:
            continue
        if len(parts) < 3:
            raise AssetFormatError(f"{image_list}:{n}: expected '<subject>/<challenge>/<image>', got {line!r}")
        subject, chall, image = parts[-3:]
        if challenge and chall != challenge:
            continue
        if subject not in scan_cache:
            scan_cache[subject] = (
                _single_file(root / "scans" / subject, ("*.obj", "*.ply"), "scan"),
                _single_file(root / "scans_lmks_onlypp" / subject, ("*.pp",), "scan landmark file"),
            )
        stem = preds / subject / chall / Path(image).stem
        samples.append(NowSample(subject, chall, image, *scan_cache[subject],
                                 _first_existing(stem, _MESH_EXTS), _first_existing(stem, _LMK_EXTS)))
    return samples


# ------------------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ScanStats:
    """Per-image statistics (mm) of the scan-to-prediction distances."""

    subject: str
    challenge: str
    image: str
    median: float
    mean: float
    std: float
    num_points: int


def _stats(d: np.ndarray) -> tuple[float, float, float]:
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    return float(np.median(d)), float(np.mean(d)), float(np.std(d))


@dataclass(frozen=True)
class NowResult:
    """NoW errors pooled over all cropped scan vertices of all evaluated images (mm).

    Attributes:
        split, challenge, metric: what was evaluated (``challenge`` "" = all four).
        median, mean, std: pooled statistics in mm (std is the population std, as NoW reports).
        count: number of evaluated images; num_points: number of pooled distances.
        per_scan: statistics per image; per_challenge: challenge → (median, mean, std, num_points).
        missing: ``<subject>/<challenge>/<stem>`` of listed images without prediction mesh or landmarks.
        unit: always ``"mm"``.
    """

    split: str
    challenge: str
    metric: bool
    median: float
    mean: float
    std: float
    count: int
    num_points: int
    per_scan: tuple[ScanStats, ...] = ()
    per_challenge: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    unit: str = "mm"

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        d = asdict(self)
        d["per_scan"] = [asdict(s) for s in self.per_scan]
        d["missing"] = list(self.missing)
        d["per_challenge"] = {k: dict(zip(("median", "mean", "std", "num_points"), v))
                              for k, v in self.per_challenge.items()}
        return d

    def to_markdown(self) -> str:
        """A Markdown table: overall row, then one row per challenge."""
        kind = "metric" if self.metric else "non-metric"
        lines = [f"NoW {self.split} ({kind}), errors in {self.unit}; {self.count} images evaluated, "
                 f"{len(self.missing)} missing predictions", "",
                 "| subset | median | mean | std | images | points |", "|---|---:|---:|---:|---:|---:|",
                 f"| all{' (' + self.challenge + ')' if self.challenge else ''} | {self.median:.3f} | "
                 f"{self.mean:.3f} | {self.std:.3f} | {self.count} | {self.num_points} |"]
        for name, (med, mean, std, n) in self.per_challenge.items():
            images = sum(1 for s in self.per_scan if s.challenge == name)
            lines.append(f"| {name} | {med:.3f} | {mean:.3f} | {std:.3f} | {images} | {n} |")
        return "\n".join(lines) + "\n"


def evaluate_now(
    dataset_root: str | os.PathLike,
    predictions_root: str | os.PathLike,
    split: str = "val",
    metric: bool = False,
    challenge: str = "",
    pred_unit: str = "m",
    image_list: str | os.PathLike | None = None,
    max_iters: int = 50,
    device: torch.device | str = "cpu",
) -> NowResult:
    """Run the NoW protocol over a split and pool the errors.

    Images whose prediction mesh or landmarks are missing are listed in ``NowResult.missing`` (and logged), not
    silently skipped; an error is raised only when no listed image has a prediction.

    Args:
        dataset_root: NoW dataset folder (see the module docstring).
        predictions_root: predictions folder laid out as NoW expects.
        split: ``"val"`` or ``"test"``.
        metric: metric variant (scale fixed by ``pred_unit``) instead of the standard non-metric one.
        challenge: ``""`` or one of :data:`NOW_CHALLENGES`.
        pred_unit: unit of the predicted meshes (``"m"`` for FLAME), used by the metric variant.
        image_list: optional explicit image list (overrides ``split``'s file).
        max_iters: alignment refinement iterations at most.
        device: torch device for the distance computations.

    Returns:
        A :class:`NowResult` (mm).
    """
    samples = list_now_samples(dataset_root, predictions_root, split, challenge, image_list)
    missing = tuple(s.key for s in samples if s.pred_mesh_path is None or s.pred_landmarks_path is None)
    for key in missing:
        log.warning("NoW: no prediction (mesh + 7 landmarks) for %s", key)
    todo = [s for s in samples if s.pred_mesh_path is not None and s.pred_landmarks_path is not None]
    if not todo:
        raise MissingAssetError(f"none of the {len(samples)} listed NoW images has a prediction under "
                                f"{predictions_root} (expected <subject>/<challenge>/<stem>.obj + .npy)")
    scans: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    per_scan: list[ScanStats] = []
    pooled: dict[str, list[np.ndarray]] = {}
    for i, s in enumerate(todo, 1):  # one full evaluation per image
        if s.scan_path not in scans:
            scans[s.scan_path] = (read_mesh(s.scan_path)[0], read_now_landmarks(s.scan_landmarks_path))
        scan_v, scan_l = scans[s.scan_path]
        pv, pf = read_mesh(s.pred_mesh_path)
        pl = read_now_landmarks(s.pred_landmarks_path)
        ev = evaluate_scan(scan_v, scan_l, pv, pf, pl, metric=metric, pred_unit=pred_unit, max_iters=max_iters,
                           device=device)
        per_scan.append(ScanStats(s.subject, s.challenge, s.image, *_stats(ev.distances), int(ev.distances.size)))
        pooled.setdefault(s.challenge, []).append(ev.distances)
        log.info("NoW %d/%d %s: median %.3f mm (%d iters)", i, len(todo), s.key, per_scan[-1].median,
                 ev.similarity.iterations)
    all_d = np.concatenate([d for ds in pooled.values() for d in ds])
    per_challenge = {}
    for name in sorted(pooled):
        d = np.concatenate(pooled[name])
        per_challenge[name] = (*_stats(d), int(d.size))
    return NowResult(split if image_list is None else str(image_list), challenge, metric, *_stats(all_d),
                     count=len(per_scan), num_points=int(all_d.size), per_scan=tuple(per_scan),
                     per_challenge=per_challenge, missing=missing)


def write_now_json(result: NowResult, path: str | os.PathLike) -> Path:
    """Write ``result.to_dict()`` as JSON, atomically."""
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return Path(path)


def write_now_markdown(result: NowResult, path: str | os.PathLike) -> Path:
    """Write ``result.to_markdown()``, atomically."""
    atomic_write_text(path, result.to_markdown())
    return Path(path)


# -------------------------------------------------------------------------------------------------------------- export
def export_now_prediction(
    path: str | os.PathLike,
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    landmarks7: np.ndarray | torch.Tensor,
) -> list[Path]:
    """Write one NoW submission entry: ``<path>.obj`` (mesh) and ``<path stem>.npy`` (7 landmarks), atomically.

    The mesh must be the *neutral* reconstruction (zero expression, zero pose), in one consistent frame and unit
    with the landmarks (FLAME: metres; declare ``pred_unit`` for the metric variant).

    Args:
        path: ``<predictions_root>/<subject>/<challenge>/<image stem>.obj``.
        vertices: (V, 3) float vertices; faces: (F, 3) int 0-based indices.
        landmarks7: (7, 3) float landmarks in NoW order (e.g. :func:`now_landmarks_from_lmk68`).

    Returns:
        [obj path, npy path].
    """
    path = Path(path)
    if path.suffix.lower() != ".obj":
        raise ValueError(f"export_now_prediction: path must end with .obj, got {path}")

    def np_(x: np.ndarray | torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    lmk = np_(landmarks7).astype(np.float64)
    if lmk.shape != (7, 3) or not np.all(np.isfinite(lmk)):
        raise ValueError(f"landmarks7: expected 7 finite 3D points (7, 3), got shape {lmk.shape}")
    npy = path.with_suffix(".npy")
    atomic_write_with(npy, lambda fh: np.save(fh, lmk, allow_pickle=False))
    return [write_obj(path, np_(vertices), np_(faces), comment="albedogan mesh"), npy]
