"""``StyleGAN2Teacher``: a frozen StyleGAN2 generator (FFHQ in AlbedoGAN) behind the teacher interface.

Images are produced with ``noise_mode="const"`` (the same ws always gives the same image), mapped from StyleGAN's
nominal [-1, 1] to [0, 1] (clamped), and optionally resized (area filter for downsampling, bilinear otherwise)
to ``image_size`` — the image the encoders, renders and image losses work at. When that is smaller than the
generator's resolution, the sample also carries the full-resolution image (``TeacherSample.image_full``, or
resized to ``target_image_size``): the self-distillation targets are unwrapped from it, so a 1024² UV albedo
learns from 1024² pixels (as the official code unwraps from the 1024² crop), not from the 224² loss image.
Truncation moves w toward ``G.mapping.w_avg`` with ``truncation_psi`` (0.5 as in AlbedoGAN).
There is no ground truth (``TeacherSample.truth`` is None).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
import torch.nn.functional as F

from albedogan.assets.locate import AssetSpec, require_file
from albedogan.nets.stylegan2 import Generator
from albedogan.structures import TeacherSample
from albedogan.teachers.base import Teacher
from albedogan.utils.shapes import assert_shape

__all__ = ["STYLEGAN2_TEACHER_SPEC", "StyleGAN2Teacher"]

#: What the checkpoint is and where it comes from (for :class:`~albedogan.assets.locate.MissingAssetError`).
STYLEGAN2_TEACHER_SPEC = AssetSpec(
    name="StyleGAN2-FFHQ 1024 generator checkpoint (rosinality stylegan2-ffhq-config-f.pt or NVIDIA ffhq.pkl)",
    config_key="teacher.checkpoint_path",
    obtain=(
        "rosinality/stylegan2-pytorch (stylegan2-ffhq-config-f.pt, converted from NVIDIA's official FFHQ config-f) "
        "or NVlabs/stylegan2-ada-pytorch pretrained ffhq.pkl; put it under ${paths.assets_dir}"
    ),
)


class StyleGAN2Teacher(Teacher):
    """Wrap a StyleGAN2 :class:`~albedogan.nets.stylegan2.Generator` as a frozen teacher.

    Args:
        generator: the generator (its ``mapping.w_avg`` must be set, as :func:`~albedogan.assets.stylegan2
            .load_stylegan2` guarantees); it becomes a frozen submodule.
        truncation_psi: default truncation toward ``w_avg`` (1 = none, 0 = the mean face).
        image_size: output side in pixels; None keeps the generator's ``img_resolution``.
        head: accepted and ignored (the training code passes the head model to every teacher).
        target_image_size: side of ``TeacherSample.image_full`` (None = the generator's resolution); no full image
            is attached when it equals ``image_size``.
    """

    def __init__(
        self,
        generator: Generator,
        truncation_psi: float = 0.5,
        image_size: Optional[int] = None,
        head: Any = None,
        target_image_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        del head  # a photo teacher has no geometry
        for name, value in (("image_size", image_size), ("target_image_size", target_image_size)):
            if value is not None and int(value) < 1:
                raise ValueError(f"StyleGAN2Teacher: {name} must be >= 1 or None, got {value}")
        self.generator = generator
        self.z_dim = int(generator.z_dim)
        self.w_dim = int(generator.w_dim)
        self.num_ws = int(generator.num_ws)
        self.image_size = int(image_size) if image_size is not None else int(generator.img_resolution)
        self.target_image_size = (int(target_image_size) if target_image_size is not None
                                  else int(generator.img_resolution))
        self.truncation_psi = float(truncation_psi)
        self.freeze()

    @classmethod
    def from_file(
        cls,
        checkpoint_path: str | os.PathLike,
        truncation_psi: float = 0.5,
        image_size: Optional[int] = None,
        head: Any = None,
        target_image_size: Optional[int] = None,
    ) -> "StyleGAN2Teacher":
        """Load the EMA generator from a rosinality ``.pt`` or NVIDIA ``.pkl`` checkpoint (safe loaders only).

        Raises:
            MissingAssetError: ``checkpoint_path`` does not exist; the message says it is set by
                ``teacher.checkpoint_path`` and where to obtain the FFHQ checkpoint.
            AssetFormatError / UnsafePickleError: from :func:`~albedogan.assets.stylegan2.load_stylegan2`.
        """
        from albedogan.assets.stylegan2 import load_stylegan2

        resolved = require_file(checkpoint_path, STYLEGAN2_TEACHER_SPEC)
        return cls(load_stylegan2(resolved, which="g_ema"), truncation_psi=truncation_psi, image_size=image_size,
                   head=head, target_image_size=target_image_size)

    def mapping(self, z: torch.Tensor, psi: float | None = None) -> torch.Tensor:
        """(N, z_dim) standard-normal z -> (N, num_ws, w_dim) W+ latents truncated toward ``w_avg`` with ``psi``."""
        assert_shape(z, [None, self.z_dim], "z")
        psi = self.truncation_psi if psi is None else float(psi)
        ref = self.generator.mapping.w_avg
        return self.generator.mapping(z.to(device=ref.device), truncation_psi=psi, update_w_avg=False)

    @torch.no_grad()
    def synthesize(self, ws: torch.Tensor) -> TeacherSample:
        """(N, num_ws, w_dim) W+ -> :class:`TeacherSample` with ``image`` (N, 3, S, S) float in [0, 1], S =
        ``image_size``, and ``image_full`` (N, 3, T, T), T = ``target_image_size``, when T != S (else None);
        ``z`` and ``truth`` are None."""
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ref = self.generator.mapping.w_avg
        ws = ws.to(device=ref.device)
        img = self.generator.synthesis(ws, noise_mode="const")  # (N, 3, R, R), nominally [-1, 1]
        img = ((img.to(ws.dtype) + 1) * 0.5).clamp(0, 1)  # resizing [0, 1] data (area / bilinear) stays in [0, 1]
        full = _resize(img, self.target_image_size) if self.target_image_size != self.image_size else None
        return TeacherSample(image=_resize(img, self.image_size), ws=ws, z=None, truth=None, image_full=full)

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, image_size={self.image_size}, "
            f"target_image_size={self.target_image_size}, truncation_psi={self.truncation_psi}"
        )


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, R, R) -> (N, 3, size, size): area filter to shrink (exact box average), bilinear to enlarge."""
    if img.shape[-1] == size:
        return img
    mode = "area" if img.shape[-1] > size else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(img, size=(size, size), mode=mode, **kwargs)
