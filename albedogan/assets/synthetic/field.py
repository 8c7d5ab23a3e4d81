"""Implicit description of the synthetic head: a signed field built from smoothly blended ellipsoids.

The field is negative inside the head and positive outside; its zero set is the skin. It is only used to place the
skin vertices (ray casting from the head centre in :mod:`albedogan.assets.synthetic.mesh`), so it needs the right
sign, not an exact distance. Coordinates follow FLAME: metres, +X = the subject's left, +Y up, +Z out of the face.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EYE_CENTERS", "EYE_RADIUS", "MOUTH_Y", "NECK_CENTER_Z", "NECK_RADII", "head_field"]

NECK_CENTER_Z = -0.022
"""Z (m) of the neck cylinder's axis."""

NECK_RADII = np.array([0.053, 0.057])
"""Half-axes (m) of the neck's elliptic cross-section along X and Z."""

EYE_RADIUS = 0.0118
"""Eyeball radius (m)."""

EYE_CENTERS = np.array([[0.0315, 0.026, 0.0635], [-0.0315, 0.026, 0.0635]])
"""(2, 3) eyeball centres (m): the subject's left eye (+X) first, then the right eye, as FLAME's joints 3 and 4."""

MOUTH_Y = -0.0445
"""Height (m) of the mouth slit at the face's centre line."""


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union of two fields) with blend width ``k`` (m)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (smooth intersection / subtraction)."""
    return -_smin(-a, -b, k)


def _ellipsoid(p: np.ndarray, center: tuple[float, float, float], radii: tuple[float, float, float]) -> np.ndarray:
    """Approximate signed distance (m) of points ``p`` (..., 3) to an axis-aligned ellipsoid."""
    q = (p - np.asarray(center)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _tapered_capsule(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float, x_scale: float) -> np.ndarray:
    """Distance-like field of a capsule from ``a`` to ``b`` whose radius goes linearly from ``ra`` to ``rb``."""
    q = p.copy()
    q[..., 0] = q[..., 0] / x_scale
    ab = b - a
    t = np.clip(((q - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(q - closest, axis=-1) - (ra + (rb - ra) * t)


def head_field(p: np.ndarray) -> np.ndarray:
    """Evaluate the head's implicit field.

    Args:
        p: (..., 3) float64 points, metres, FLAME frame.

    Returns:
        (...) float64 field values, < 0 inside the skin, > 0 outside (roughly metres near the surface).
    """
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    skull = _ellipsoid(p, (0.0, 0.034, -0.014), (0.0745, 0.088, 0.098))
    # lower face: an ellipsoid whose width narrows toward the chin
    taper = np.clip(1.0 + 0.45 * (y + 0.02) / 0.08, 0.55, 1.15)
    face_p = np.stack([x / taper, y, z], axis=-1)
    face = _ellipsoid(face_p, (0.0, -0.026, 0.018), (0.066, 0.066, 0.074))
    # neck: an elliptic cylinder capped inside the head
    q = np.stack([x, z - NECK_CENTER_Z], axis=-1) / NECK_RADII
    neck = (np.linalg.norm(q, axis=-1) - 1.0) * NECK_RADII.min()
    neck = np.maximum(neck, y + 0.03)
    f = _smin(_smin(skull, face, 0.02), neck, 0.025)

    features = [
        _ellipsoid(p, (0.0, 0.047, 0.069), (0.056, 0.016, 0.019)),  # brow ridge
        _ellipsoid(p, (0.047, 0.003, 0.051), (0.024, 0.019, 0.028)),  # cheekbones
        _ellipsoid(p, (-0.047, 0.003, 0.051), (0.024, 0.019, 0.028)),
        _tapered_capsule(p, np.array([0.0, 0.030, 0.079]), np.array([0.0, -0.006, 0.1045]), 0.0055, 0.0095, 1.25),
        _ellipsoid(p, (0.0125, -0.011, 0.0895), (0.0095, 0.0075, 0.0105)),  # alae (nostril wings)
        _ellipsoid(p, (-0.0125, -0.011, 0.0895), (0.0095, 0.0075, 0.0105)),
        _ellipsoid(p, (0.0, -0.0375, 0.0835), (0.0245, 0.0085, 0.0115)),  # upper lip
        _ellipsoid(p, (0.0, -0.0515, 0.0815), (0.0215, 0.0085, 0.0115)),  # lower lip
        _ellipsoid(p, (0.0, -0.0745, 0.0705), (0.0215, 0.0165, 0.0145)),  # chin
        _ellipsoid(p, (0.0745, 0.012, -0.012), (0.011, 0.029, 0.017)),  # ears
        _ellipsoid(p, (-0.0745, 0.012, -0.012), (0.011, 0.029, 0.017)),
    ]
    for i, g in enumerate(features):
        f = _smin(f, g, 0.012 if i < 3 else 0.007)
    # eye sockets carved around the eyeballs
    for c in EYE_CENTERS:
        socket = _ellipsoid(p, (c[0], c[1] + 0.001, c[2] + 0.012), (0.0175, 0.0115, 0.0125))
        f = _smax(f, -socket, 0.006)
    # a shallow groove between the lips (the mouth slit itself is cut in the mesh)
    groove = _ellipsoid(p, (0.0, MOUTH_Y, 0.092), (0.026, 0.0022, 0.009))
    f = _smax(f, -groove, 0.003)
    return f
