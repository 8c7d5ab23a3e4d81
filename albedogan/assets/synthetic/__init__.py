"""The embedded synthetic FLAME-format head (mesh, blendshapes, rig, landmarks, UVs, masks).

Public API: :data:`SYNTHETIC_HEAD_VERSION`, :class:`SyntheticHead`, :func:`build_synthetic_head`,
:func:`ensure_synthetic_head`, :func:`synthetic_asset_paths`. Modules: ``field`` (implicit head shape), ``mesh``
(grid mesh, mouth slit, eyeballs, UVs, symmetry), ``rig`` (joints, skinning, pose correctives), ``basis``
(identity/expression blendshapes), ``landmarks`` (DECA embedding), ``masks`` (UV masks), ``head`` (assembly, files).
"""

from albedogan.assets.synthetic.head import (
    SYNTHETIC_DIRNAME,
    SYNTHETIC_HEAD_VERSION,
    SyntheticHead,
    build_synthetic_head,
    ensure_synthetic_head,
    synthetic_asset_paths,
)

__all__ = [
    "SYNTHETIC_DIRNAME",
    "SYNTHETIC_HEAD_VERSION",
    "SyntheticHead",
    "build_synthetic_head",
    "ensure_synthetic_head",
    "synthetic_asset_paths",
]
