"""Identity and expression blendshapes of the synthetic head, in FLAME's PCA-like layout.

Each column of ``shapedirs`` is a unit-norm displacement field (over all V·3 entries) times its standard deviation
(metres), columns ordered by decreasing standard deviation within each block, so coefficients drawn from N(0, 1)
give plausible heads. The first columns of each block are named, smooth, semantic fields (names returned by
:func:`build_basis`); the rest are smooth random fields from a fixed seed with decaying standard deviation.
Eyeballs move rigidly (identity) or not at all (expression); mouth-slit copies move together except where an
expression opens the mouth.
"""

from __future__ import annotations


import numpy as np

from albedogan.assets.synthetic.field import EYE_CENTERS, EYE_RADIUS, MOUTH_Y, NECK_CENTER_Z
from albedogan.assets.synthetic.mesh import MIRROR, HeadMesh
from albedogan.assets.synthetic.rig import jaw_weight, smoothstep

__all__ = ["N_IDENTITY", "N_EXPRESSION", "build_basis", "vertex_normals"]

N_IDENTITY = 300
N_EXPRESSION = 100
SEED = 20240107



def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a mesh with (V, 3) vertices and (F, 3) faces."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _g(p: np.ndarray, c: tuple[float, float, float], s: tuple[float, float, float]) -> np.ndarray:
    """(V,) anisotropic Gaussian bump centred at ``c`` (m) with widths ``s`` (m)."""
    q = (p - np.asarray(c)) / np.asarray(s)
    return np.exp(-0.5 * (q * q).sum(-1))


def _pair(p: np.ndarray, c: tuple[float, float, float], s: tuple[float, float, float]) -> np.ndarray:
    """(V,) Gaussian bump on both sides: at ``c`` and at its mirror image."""
    return _g(p, c, s) + _g(p, (-c[0], c[1], c[2]), s)


def _vec(*cols: np.ndarray) -> np.ndarray:
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def _identity_fields(mesh: HeadMesh, normals: np.ndarray) -> list[tuple[str, np.ndarray, float]]:
    """(name, (V, 3) field, peak displacement in m at 1 std) of the semantic identity directions."""
    p = mesh.vertices
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    sx = np.tanh(x / 0.01)
    zero = np.zeros_like(x)
    front = smoothstep(z / 0.06)
    lower = smoothstep((0.0 - y) / 0.05) * front
    cranium = smoothstep((y + 0.03) / 0.05)
    nose = _g(p, (0.0, 0.005, 0.1), (0.012, 0.022, 0.015))
    return [
        ("head_width", _vec(x, zero, zero), 0.006),
        ("head_length", _vec(zero, zero, (z - 0.0) * cranium), 0.007),
        ("head_height", _vec(zero, (y + 0.03) * cranium, zero), 0.006),
        ("face_width", _vec(x * front * smoothstep((0.07 - y) / 0.04), zero, zero), 0.005),
        ("face_height", _vec(zero, (y - 0.026) * lower, zero), 0.005),
        ("jaw_width", _vec(x * lower * smoothstep((-0.02 - y) / 0.04), zero, zero), 0.005),
        ("chin_length", _vec(zero, -_g(p, (0, -0.08, 0.065), (0.025, 0.018, 0.03)), zero), 0.004),
        ("chin_forward", _vec(zero, zero, _g(p, (0, -0.075, 0.07), (0.022, 0.02, 0.03))), 0.004),
        ("nose_length", _vec(zero, zero, nose), 0.004),
        ("nose_width", _vec(x * _g(p, (0, -0.008, 0.095), (0.02, 0.012, 0.02)) / 0.015, zero, zero), 0.003),
        ("nose_bridge", _vec(zero, zero, _g(p, (0, 0.022, 0.088), (0.008, 0.014, 0.02))), 0.003),
        ("nose_height", _vec(zero, -nose, zero), 0.003),
        ("brow_ridge", _vec(zero, 0.3 * _g(p, (0, 0.048, 0.075), (0.05, 0.01, 0.02)), _g(p, (0, 0.048, 0.075), (0.05, 0.01, 0.02))), 0.003),
        ("cheeks", _pair(p, (0.045, 0.0, 0.06), (0.015, 0.015, 0.02))[:, None] * normals, 0.004),
        ("eye_spacing", _vec(sx * _pair(p, (0.032, 0.026, 0.07), (0.013, 0.011, 0.02)), zero, zero), 0.003),
        ("eye_height", _vec(zero, _pair(p, (0.032, 0.026, 0.07), (0.016, 0.012, 0.02)), zero), 0.0025),
        ("lip_thickness", _vec(zero, zero, _g(p, (0, MOUTH_Y, 0.085), (0.02, 0.008, 0.012))), 0.0025),
        ("mouth_width", _vec(x * _g(p, (0, MOUTH_Y, 0.08), (0.025, 0.012, 0.02)) / 0.02, zero, zero), 0.003),
        ("forehead_slope", _vec(zero, zero, _g(p, (0, 0.075, 0.07), (0.05, 0.025, 0.03))), 0.005),
        ("ears", _pair(p, (0.075, 0.012, -0.012), (0.01, 0.03, 0.02))[:, None] * _vec(sx, zero, -0.3 + zero), 0.005),
        ("neck_width", _vec(x, zero, z - NECK_CENTER_Z) * smoothstep((-0.06 - y) / 0.04)[:, None], 0.006),
        ("cheekbone_height", _vec(zero, _pair(p, (0.047, 0.003, 0.055), (0.015, 0.012, 0.02)), zero), 0.003),
    ]


def _expression_fields(mesh: HeadMesh, normals: np.ndarray) -> list[tuple[str, np.ndarray, float, int]]:
    """(name, (V, 3) field, peak displacement in m, parity) of the semantic expressions (parity -1 = odd)."""
    p = mesh.vertices
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    sx = np.tanh(x / 0.006)
    zero = np.zeros_like(x)
    jaw = jaw_weight(mesh)
    lips = _g(p, (0, MOUTH_Y, 0.085), (0.022, 0.012, 0.02))
    upper_lip = lips * (~mesh.lower_lip & (y >= MOUTH_Y - 1e-9))
    lower_lip = lips * (mesh.lower_lip | (y < MOUTH_Y - 1e-9))
    corners = _pair(p, (0.024, MOUTH_Y + 0.001, 0.075), (0.01, 0.01, 0.015))
    brow = _pair(p, (0.03, 0.045, 0.075), (0.022, 0.012, 0.03))
    inner_brow = _pair(p, (0.015, 0.042, 0.08), (0.012, 0.01, 0.03))
    lids_up = np.zeros_like(x)
    lids_low = np.zeros_like(x)
    for c in EYE_CENTERS:
        d_surface = np.linalg.norm(p - c, axis=-1) - EYE_RADIUS
        near = np.exp(-((d_surface / 0.005) ** 2)) * smoothstep((z - c[2]) / 0.006)
        lids_up += near * smoothstep((y - c[1] + 0.002) / 0.006)
        lids_low += near * smoothstep((c[1] - y - 0.002) / 0.006)
    cheeks = _pair(p, (0.04, -0.03, 0.06), (0.016, 0.016, 0.02))
    nose_side = _pair(p, (0.012, 0.01, 0.09), (0.008, 0.01, 0.02))
    return [
        ("mouth_open", _vec(zero, -jaw, -0.25 * jaw), 0.008, 1),
        ("smile", corners[:, None] * _vec(0.4 * sx, 0.8 + zero, -0.45 + zero) + 0.3 * _vec(zero, cheeks, zero), 0.006, 1),
        ("brow_raise", _vec(zero, brow + 0.5 * _g(p, (0, 0.07, 0.07), (0.05, 0.02, 0.04)), zero), 0.005, 1),
        ("frown", _vec(-0.5 * sx * inner_brow, -inner_brow, 0.2 * inner_brow), 0.004, 1),
        ("pucker", lips[:, None] * _vec(-x / 0.02, zero, 0.6 + zero), 0.005, 1),
        ("eyes_close", _vec(zero, -lids_up, 0.25 * lids_up), 0.006, 1),
        ("cheek_puff", cheeks[:, None] * normals, 0.005, 1),
        ("mouth_left_right", _vec(lips + 0.5 * corners, zero, zero), 0.004, -1),
        ("upper_lip_raise", _vec(zero, upper_lip, 0.2 * upper_lip), 0.003, 1),
        ("lower_lip_down", _vec(zero, -lower_lip, 0.2 * lower_lip), 0.003, 1),
        ("nose_wrinkle", _vec(zero, nose_side, 0.3 * nose_side), 0.0025, 1),
        ("squint", _vec(zero, lids_low, zero), 0.0025, 1),
        ("mouth_stretch", corners[:, None] * _vec(sx, -0.3 + zero, -0.3 + zero), 0.004, 1),
        ("jaw_sideways", _vec(jaw, zero, zero), 0.004, -1),
    ]


def _random_fields(
    rng: np.random.Generator, mesh: HeadMesh, count: int, weight: np.ndarray, width: tuple[float, float]
) -> list[np.ndarray]:
    """``count`` smooth random (V, 3) fields: sums of Gaussian blobs with random 3D amplitudes, mostly symmetric."""
    p = mesh.vertices
    skin = np.nonzero((mesh.eye_id == 0) & (weight > 0.2))[0]
    out = []
    for _ in range(count):
        centers = p[rng.choice(skin, size=5)]
        widths = rng.uniform(width[0], width[1], size=5)
        amps = rng.normal(size=(5, 3))
        d2 = ((p[:, None, :] - centers[None]) ** 2).sum(-1)  # (V, 5)
        f = np.exp(-0.5 * d2 / widths**2) @ amps  # (V, 3)
        f = f * weight[:, None]
        sym = 0.5 * (f + f[mesh.symmetry] * MIRROR)
        anti = 0.5 * (f - f[mesh.symmetry] * MIRROR)
        out.append(sym + 0.2 * anti)
    return out


def _rigid_eyes(mesh: HeadMesh, field: np.ndarray) -> np.ndarray:
    """Identity constraints: each eyeball moves by one translation (its mean), lower-lip copies with the upper lip."""
    out = field.copy()
    out[mesh.slit_lower] = field[mesh.slit_upper]
    for k in (1, 2):
        eye = mesh.eye_id == k
        out[eye] = field[eye].mean(axis=0)
    return out


def build_basis(mesh: HeadMesh) -> tuple[np.ndarray, np.ndarray, list[str], list[str], np.ndarray]:
    """Build the blendshapes.

    Returns:
        shapedirs: (V, 3, 400) float64, identity 0..299 then expression 300..399, metres per unit coefficient.
        stds: (400,) float64 column norms (the standard deviations), decreasing within each block.
        identity_names: names of the semantic identity columns (in column order; the rest are random).
        expression_names: names of the semantic expression columns.
        parity: (400,) int64 +1 mirror-symmetric column, -1 mirror-antisymmetric column, 0 approximately symmetric.
    """
    rng = np.random.default_rng(SEED)
    normals = vertex_normals(mesh.vertices, mesh.faces)
    skin = (mesh.eye_id == 0).astype(np.float64)

    def normalise(f: np.ndarray, peak: float, parity: int) -> tuple[np.ndarray, float]:
        f = 0.5 * (f + parity * f[mesh.symmetry] * MIRROR)
        unit = f / np.linalg.norm(f)
        scale = peak / np.abs(unit).max()
        return unit, scale

    columns: list[tuple[np.ndarray, float, int, str]] = []
    for name, f, peak in _identity_fields(mesh, normals):
        unit, std = normalise(_rigid_eyes(mesh, f), peak, 1)
        columns.append((unit, std, 1, name))
    columns.sort(key=lambda c: -c[1])
    smallest = columns[-1][1]
    head_weight = skin
    for k, f in enumerate(_random_fields(rng, mesh, N_IDENTITY - len(columns), head_weight, (0.02, 0.06))):
        f = _rigid_eyes(mesh, f)
        columns.append((f / np.linalg.norm(f), 0.9 * smallest * np.exp(-k / 70.0), 0, f"random_{k}"))
    id_cols = columns

    columns = []
    for name, f, peak, parity in _expression_fields(mesh, normals):
        f = f * skin[:, None]
        unit, std = normalise(f, peak, parity)
        columns.append((unit, std, parity, name))
    columns.sort(key=lambda c: -c[1])
    smallest = columns[-1][1]
    face_weight = smoothstep(mesh.vertices[:, 2] / 0.05) * smoothstep((0.08 - mesh.vertices[:, 1]) / 0.03) * skin
    face_weight *= smoothstep((mesh.vertices[:, 1] + 0.1) / 0.02)
    for k, f in enumerate(_random_fields(rng, mesh, N_EXPRESSION - len(columns), face_weight, (0.012, 0.03))):
        columns.append((f / np.linalg.norm(f), 0.9 * smallest * np.exp(-k / 25.0), 0, f"random_{k}"))
    exp_cols = columns

    all_cols = id_cols + exp_cols
    shapedirs = np.stack([u * s for u, s, _, _ in all_cols], axis=-1)  # (V, 3, 400)
    stds = np.array([s for _, s, _, _ in all_cols])
    parity = np.array([par for _, _, par, _ in all_cols], dtype=np.int64)
    id_names = [n for _, _, par, n in id_cols if not n.startswith("random_")]
    exp_names = [n for _, _, par, n in exp_cols if not n.startswith("random_")]
    return shapedirs, stds, id_names, exp_names, parity
