"""Skeleton of the synthetic head: joint regressor, kinematic tree, skinning weights and pose correctives.

Joints follow FLAME: 0 global (base of the neck), 1 neck (head rotation), 2 jaw, 3 left eye (+X), 4 right eye;
parents [-1, 0, 1, 1, 1]. Pose correctives use FLAME's layout: ``posedirs[v, c, 9 * (j - 1) + 3 * r + k]`` is the
offset of vertex ``v`` along axis ``c`` per unit of entry ``(r, k)`` of ``R_j - I`` for joints j = 1..4.
"""

from __future__ import annotations

import numpy as np

from albedogan.assets.synthetic.field import EYE_CENTERS, EYE_RADIUS, NECK_CENTER_Z, NECK_RADII
from albedogan.assets.synthetic.mesh import MOUTH_HALF_WIDTH, HeadMesh

__all__ = ["PARENTS", "JOINT_TARGETS", "joint_regressor", "skinning_weights", "pose_correctives", "smoothstep"]

PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
"""(5,) FLAME kinematic tree: global, neck, jaw, left eye, right eye."""

JOINT_TARGETS = np.array(
    [
        [0.0, -0.105, NECK_CENTER_Z],  # global: base of the neck
        [0.0, -0.045, -0.018],  # neck: head pivot
        [0.0, -0.017, 0.002],  # jaw hinge, between the ears below their centre
        EYE_CENTERS[0],
        EYE_CENTERS[1],
    ]
)
"""(5, 3) rest joint locations (m) that :func:`joint_regressor` reproduces exactly on the template."""


def smoothstep(t: np.ndarray) -> np.ndarray:
    """Cubic ramp: 0 for t <= 0, 1 for t >= 1, C1-smooth in between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _regressor_row(vertices: np.ndarray, candidates: np.ndarray, target: np.ndarray, sigma: float) -> np.ndarray:
    """(V,) weights over ``candidates`` (indices) that sum to 1 and reproduce ``target`` exactly.

    Gaussian weights by distance are corrected by the minimum-norm change that satisfies the 4 linear constraints
    (x, y, z, sum); symmetric candidates and a target on the mirror plane give a symmetric row.
    """
    p = vertices[candidates]
    w0 = np.exp(-(((p - target) ** 2).sum(-1)) / (2.0 * sigma**2))
    w0 /= w0.sum()
    A = np.concatenate([p.T, np.ones((1, len(p)))])  # (4, K)
    b = np.concatenate([target, [1.0]])
    w = w0 + A.T @ np.linalg.solve(A @ A.T, b - A @ w0)
    row = np.zeros(len(vertices))
    row[candidates] = w
    return row


def joint_regressor(mesh: HeadMesh) -> np.ndarray:
    """(5, V) float64 regressor; rows sum to 1 and ``J_regressor @ mesh.vertices == JOINT_TARGETS``.

    The eye joints are the means of their eyeball vertices (the sphere centres); the other joints are weighted
    averages of the skin vertices around them.
    """
    v = mesh.vertices
    skin = np.nonzero(mesh.eye_id == 0)[0]
    rows = []
    for j in range(3):
        d = np.linalg.norm(v[skin] - JOINT_TARGETS[j], axis=-1)
        cand = skin[d < np.sort(d)[min(400, len(d) - 1)] + 1e-12]
        rows.append(_regressor_row(v, cand, JOINT_TARGETS[j], sigma=0.06))
    rows = [0.5 * (r + r[mesh.symmetry]) for r in rows]  # exactly mirror-symmetric
    for k in (1, 2):
        eye = np.nonzero(mesh.eye_id == k)[0]
        row = np.zeros(len(v))
        row[eye] = 1.0 / len(eye)
        rows.append(row)
    return np.stack(rows)


def jaw_weight(mesh: HeadMesh) -> np.ndarray:
    """(V,) float64 in [0, 1]: how much each skin vertex follows the jaw (1 on the chin and lower lip)."""
    v = mesh.vertices
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    # upper boundary: a line (side view) from the mouth corners back to below the ear
    y_line = -0.044 - 0.2667 * (z - 0.08)
    w_up = smoothstep((y_line - y) / 0.014)
    mouth = smoothstep((MOUTH_HALF_WIDTH + 0.004 - np.abs(x)) / 0.008)
    below_slit = (mesh.grid_row > mesh.mouth_row) | mesh.lower_lip
    w_up = np.where(below_slit, np.maximum(w_up, mouth), w_up)
    above_slit = (mesh.grid_row >= 0) & (mesh.grid_row <= mesh.mouth_row) & ~mesh.lower_lip
    w_up = np.where(above_slit & (np.abs(x) < MOUTH_HALF_WIDTH + 0.004), 0.0, w_up)
    # lower boundary: the skin under the chin hands over to the neck
    inside = np.clip(1.0 - (x / NECK_RADII[0]) ** 2, 0.0, 1.0)
    z_neck = NECK_CENTER_Z + NECK_RADII[1] * np.sqrt(inside)
    w_low = smoothstep((z - z_neck - 0.004) / 0.03)
    w_back = smoothstep((z + 0.012) / 0.03)
    w = w_up * w_low * w_back
    w[mesh.eye_id > 0] = 0.0
    return 0.5 * (w + w[mesh.symmetry])


def skinning_weights(mesh: HeadMesh) -> np.ndarray:
    """(V, 5) float64 LBS weights, rows sum to 1: neck stump → global, head → neck, jaw → jaw, eyeballs → eyes."""
    V = len(mesh.vertices)
    y = mesh.vertices[:, 1]
    w = np.zeros((V, 5))
    root = smoothstep((-0.078 - y) / 0.035)
    root[mesh.eye_id > 0] = 0.0
    jaw = jaw_weight(mesh) * (1.0 - root)
    w[:, 0] = root
    w[:, 2] = jaw
    w[:, 1] = 1.0 - root - jaw
    for k in (1, 2):
        eye = mesh.eye_id == k
        w[eye] = 0.0
        w[eye, 2 + k] = 1.0
    return w


def pose_correctives(mesh: HeadMesh, weights: np.ndarray) -> np.ndarray:
    """(V, 3, 36) float64 small pose-dependent offsets (metres per unit of the ``R - I`` features).

    - jaw opening (feature of entry (2, 1) of the jaw's ``R - I``, = sin of the opening angle): the cheeks between
      the jaw and the skull are pulled in and down, the chin slightly forward;
    - neck pitch: the skin under the chin bulges forward when the head bends down;
    - eye pitch: the upper eyelids follow the gaze up and down.
    """
    v = mesh.vertices
    V = len(v)
    P = np.zeros((V, 3, 36))
    jaw = weights[:, 2]
    cheek = 4.0 * jaw * (1.0 - jaw)  # bell over the transition zone
    f_jaw = 9 + 7  # entry (2, 1) of joint 2
    P[:, 0, f_jaw] = -0.006 * cheek * np.tanh(v[:, 0] / 0.01)
    P[:, 1, f_jaw] = -0.004 * cheek
    P[:, 2, f_jaw] = 0.004 * jaw**2
    f_neck = 0 + 7
    under_chin = smoothstep((-0.07 - v[:, 1]) / 0.02) * smoothstep((v[:, 2] - 0.0) / 0.03)
    under_chin *= weights[:, 1] + weights[:, 0]
    P[:, 2, f_neck] = 0.01 * under_chin
    skin = mesh.eye_id == 0
    for k in (0, 1):
        c = EYE_CENTERS[k]
        d_surface = np.linalg.norm(v - c, axis=-1) - EYE_RADIUS
        lid = np.exp(-((d_surface / 0.005) ** 2)) * smoothstep((v[:, 1] - c[1]) / 0.006) * skin
        lid *= smoothstep((v[:, 2] - c[2]) / 0.006)
        f_eye = 9 * (3 + k - 1) + 5  # entry (1, 2) = -sin(pitch)
        P[:, 1, f_eye] = 0.6 * EYE_RADIUS * lid
    return P
