"""Linear blend skinning for FLAME-format models: pure, batched functions (no module state).

Letters: N batch, V vertices, J joints, K blendshape coefficients, P = 9·(J−1) pose-corrective features.
Positions are metres in FLAME's model frame (+Y up, +Z out of the face). Rotations act on column vectors
(``x' = R @ x``); axis-angle vectors are radians with the rotation axis as direction.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = ["batch_rodrigues", "blend_shapes", "vertices2joints", "pose_features", "rigid_transforms", "lbs"]


def batch_rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors to rotation matrices (Rodrigues), finite value and gradient at zero rotation.

    Closed form ``R = cos θ · I + sinc(θ) [v]× + ½ sinc²(θ/2) · v vᵀ`` with ``v`` the (unnormalised) axis-angle and
    ``θ = |v|``: the same matrices as pytorch3d's ``axis_angle_to_matrix`` (to float rounding) in a handful of ops,
    which matters in the fitter's small-batch loops. ``½ sinc²(θ/2) = (1 − cos θ)/θ²`` without its cancellation at
    small angles; ``θ`` carries a 1e-30 floor under the square root so ``∂θ/∂v = v/θ`` is 0, not NaN, at ``v = 0``.

    Args:
        axis_angle: (..., 3) float axis-angle, radians.

    Returns:
        (..., 3, 3) rotation matrices, same dtype/device.
    """
    if axis_angle.shape[-1] != 3:
        raise ValueError(f"batch_rodrigues: expected (..., 3) axis-angles, got shape {tuple(axis_angle.shape)}")
    theta = torch.sqrt((axis_angle * axis_angle).sum(-1) + 1e-30)[..., None, None]  # (..., 1, 1)
    sin_c = torch.sinc(theta / math.pi)  # sin θ / θ
    cos_c = 0.5 * torch.sinc(theta / (2 * math.pi)) ** 2  # (1 - cos θ) / θ²
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))  # [v]×
    outer = axis_angle[..., :, None] * axis_angle[..., None, :]  # v vᵀ
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return torch.cos(theta) * eye + sin_c * skew + cos_c * outer


def blend_shapes(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Linear blendshape offsets.

    Args:
        coeffs: (N, K) coefficients.
        dirs: (V, 3, K) blendshape basis, metres per unit coefficient.

    Returns:
        (N, V, 3) offsets ``Σ_k coeffs[n, k] · dirs[:, :, k]``.
    """
    return torch.einsum("nk,vck->nvc", coeffs, dirs)


def vertices2joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Regress joint locations from vertices.

    Args:
        J_regressor: (J, V) joint regressor.
        vertices: (N, V, 3) vertex positions.

    Returns:
        (N, J, 3) joints ``J_regressor @ vertices``.
    """
    return torch.einsum("jv,nvc->njc", J_regressor, vertices)


def pose_features(rot_mats: torch.Tensor) -> torch.Tensor:
    """Pose-corrective features: ``(R_j − I)`` of the non-root joints, flattened row-major.

    Args:
        rot_mats: (N, J, 3, 3) local joint rotations (joint 0 = root).

    Returns:
        (N, 9·(J−1)) features, ordered joint 1 (r00, r01, ..., r22), joint 2, ... as in the official ``posedirs``.
    """
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).flatten(1)  # (N, J-1, 3, 3) → (N, 9(J-1))


def rigid_transforms(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose local joint rotations along the kinematic tree.

    Joint j rotates its subtree about its rest location ``c_j = joints[:, j]``:
    ``M_j = [R_j | c_j − R_j c_j]``, and the skinning transform of joint j is ``S_j = S_parent(j) · M_j``
    (``S_0 = M_0``), which maps a rest-pose point to where joint j alone carries it. This equals the usual
    ``G_j · T(−c_j)`` with ``G_j = G_parent · [R_j | c_j − c_parent]``, but zero rotations give exactly the identity.

    Args:
        rot_mats: (N, J, 3, 3) local rotations.
        joints: (N, J, 3) rest-pose joint locations.
        parents: (J,) long parents, ``parents[0] = -1`` and ``parents[j] < j``.

    Returns:
        posed_joints: (N, J, 3) joint locations after posing.
        skinning: (N, J, 3, 4) affine transforms ``[A | b]`` (rotation, translation) of each joint, acting on
            rest-pose points as ``x ↦ A x + b``.
    """
    n_joints = joints.shape[1]
    offsets = joints - torch.einsum("njab,njb->nja", rot_mats, joints)  # (N, J, 3) = c - R c
    rotations = [rot_mats[:, 0]]
    translations = [offsets[:, 0]]
    for j in range(1, n_joints):  # loop over the J (= 5) joints of the tree, not over vertices
        p = int(parents[j])
        rotations.append(rotations[p] @ rot_mats[:, j])
        translations.append(torch.einsum("nab,nb->na", rotations[p], offsets[:, j]) + translations[p])
    rot = torch.stack(rotations, dim=1)  # (N, J, 3, 3)
    trans = torch.stack(translations, dim=1)  # (N, J, 3)
    posed_joints = torch.einsum("njab,njb->nja", rot, joints) + trans
    return posed_joints, torch.cat([rot, trans.unsqueeze(-1)], dim=-1)


def lbs(
    coeffs: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    J_regressor: torch.Tensor,
    parents: torch.Tensor,
    lbs_weights: torch.Tensor,
    rot_mats: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape + pose blendshapes, then linear blend skinning (the SMPL/FLAME model equation).

    Skinning is evaluated in delta form, ``v' = v + Σ_j w_j ((A_j − I) v + b_j)``, which equals the usual
    ``Σ_j w_j (A_j v + b_j)`` because skinning weights sum to one per vertex, and returns the input exactly for
    zero pose.

    Args:
        coeffs: (N, K) shape and expression coefficients (matching the columns of ``shapedirs``).
        pose: (N, 3·J) axis-angle per joint in joint order (FLAME: global, neck, jaw, left eye, right eye), radians.
        v_template: (V, 3) rest template, metres.
        shapedirs: (V, 3, K) blendshape basis.
        posedirs: (V, 3, P) pose correctives in the official layout, P = 9·(J−1).
        J_regressor: (J, V) joint regressor.
        parents: (J,) long kinematic tree.
        lbs_weights: (V, J) skinning weights, rows summing to 1.
        rot_mats: optional (N, J, 3, 3) ``batch_rodrigues`` of ``pose``, when the caller needs them too.

    Returns:
        vertices: (N, V, 3) posed vertices, metres.
        joints: (N, J, 3) posed joint locations.
    """
    n_batch = coeffs.shape[0]
    n_joints = J_regressor.shape[0]
    v_shaped = v_template + blend_shapes(coeffs, shapedirs)  # (N, V, 3)
    joints = vertices2joints(J_regressor, v_shaped)  # (N, J, 3)
    if rot_mats is None:
        rot_mats = batch_rodrigues(pose.reshape(n_batch, n_joints, 3))  # (N, J, 3, 3)
    v_posed = v_shaped + torch.einsum("np,vcp->nvc", pose_features(rot_mats), posedirs)
    posed_joints, transforms = rigid_transforms(rot_mats, joints, parents)  # (N, J, 3), (N, J, 3, 4)
    eye = torch.eye(3, dtype=transforms.dtype, device=transforms.device)
    delta = torch.cat([transforms[..., :3] - eye, transforms[..., 3:]], dim=-1)  # (N, J, 3, 4)
    blended = torch.einsum("vj,njab->nvab", lbs_weights, delta)  # (N, V, 3, 4)
    vertices = v_posed + torch.einsum("nvab,nvb->nva", blended[..., :3], v_posed) + blended[..., 3]
    return vertices, posed_joints
