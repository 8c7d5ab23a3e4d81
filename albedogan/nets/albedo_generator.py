"""Albedo generator G_A: a StyleGAN2 synthesis network that maps the teacher's w / W+ to a UV albedo map.

The albedo map lives in FLAME's UV layout (see :mod:`albedogan.render` for the UV convention): (N, 3, R, R) RGB,
linear reflectance in [0, 1], row 0 = top of the UV image (v = 1).

Output mapping: the synthesis network's image is nominally in [-1, 1] (StyleGAN convention); the albedo is
``clamp((x + 1) / 2, 0, 1)``. ``forward(..., raw=True)`` returns the unclamped ``(x + 1) / 2`` for losses that need
gradients outside the range.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from albedogan.nets.stylegan2 import Generator, SynthesisNetwork
from albedogan.utils.logging import get_logger

__all__ = ["AlbedoGenerator"]

_log = get_logger(__name__)


class AlbedoGenerator(nn.Module):
    """StyleGAN2 synthesis network at a UV resolution, fed the teacher's latents.

    Args:
        w_dim: latent size (must equal the teacher's).
        uv_resolution: albedo map size R (power of two; 1024 in the paper, tiny in tests).
        channel_base, channel_max: channel rule ``min(channel_base // res, channel_max)`` (teacher's by default).
        num_fp16_res, conv_clamp: GPU mixed precision (off on CPU).
        img_channels: 3 (RGB albedo).

    Attributes:
        synthesis: the :class:`~albedogan.nets.stylegan2.SynthesisNetwork`.
        num_ws: rows of W+ it consumes (2·log2(R) − 2).
        init_kwargs: constructor arguments (``AlbedoGenerator(**g.init_kwargs)`` rebuilds it).
    """

    def __init__(
        self,
        w_dim: int = 512,
        uv_resolution: int = 1024,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        img_channels: int = 3,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            w_dim=w_dim, uv_resolution=uv_resolution, channel_base=channel_base, channel_max=channel_max,
            num_fp16_res=num_fp16_res, conv_clamp=conv_clamp, img_channels=img_channels,
        )
        self.w_dim = w_dim
        self.uv_resolution = uv_resolution
        self.synthesis = SynthesisNetwork(w_dim, uv_resolution, img_channels, channel_base, channel_max,
                                          num_fp16_res, conv_clamp)
        self.num_ws = self.synthesis.num_ws

    def select_ws(self, ws: torch.Tensor) -> torch.Tensor:
        """Adapt a teacher latent to this network's W+.

        Args:
            ws: (N, w_dim) single w, or (N, K, w_dim) teacher W+.

        Returns:
            (N, num_ws, w_dim): a single w is broadcast; for K >= num_ws the first ``num_ws`` rows are taken
            (coarse-to-fine order matches); for K < num_ws the last row is repeated for the extra fine layers.
        """
        if ws.ndim == 2:
            ws = ws.unsqueeze(1)
        if ws.ndim != 3 or ws.shape[-1] != self.w_dim:
            raise ValueError(f"AlbedoGenerator: ws must be (N, w_dim={self.w_dim}) or (N, K, {self.w_dim}), "
                             f"got {tuple(ws.shape)}")
        k = ws.shape[1]
        if k >= self.num_ws:
            return ws[:, : self.num_ws]
        return torch.cat([ws, ws[:, -1:].expand(-1, self.num_ws - k, -1)], dim=1)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", raw: bool = False,
                fused_modconv: bool | None = None) -> torch.Tensor:
        """Generate UV albedo maps.

        Args:
            ws: (N, w_dim) or (N, K, w_dim) teacher latents (see :meth:`select_ws`).
            noise_mode: ``"const"`` (deterministic, default), ``"random"`` or ``"none"``.
            raw: return ``(x + 1) / 2`` without clamping (for losses).
            fused_modconv: None = fused in eval, unfused in training.

        Returns:
            (N, 3, R, R) float32 albedo, [0, 1] (unless ``raw``).
        """
        img = self.synthesis(self.select_ws(ws), noise_mode=noise_mode, fused_modconv=fused_modconv)
        out = (img + 1) * 0.5
        return out if raw else out.clamp(0, 1)

    @classmethod
    def from_teacher(cls, teacher: Generator | SynthesisNetwork, uv_resolution: int | None = None) -> "AlbedoGenerator":
        """Initialise from a teacher's synthesis weights so the latent spaces correspond.

        Rule (per synthesis block ``b{res}``, channels follow the teacher's channel rule):

        * same resolution: every block (const, conv0, conv1, torgb, noise buffers) is copied -> identical output;
        * smaller ``uv_resolution``: blocks ``b4 .. b{uv_resolution}`` are copied, including that block's torgb,
          so the output equals the teacher's intermediate RGB at that resolution;
        * larger ``uv_resolution``: all teacher blocks are copied; the extra high-resolution blocks keep their
          fresh random initialisation (drawn from the global torch RNG: seed it for reproducibility).

        The teacher is not modified (tensors are cloned).

        Args:
            teacher: a :class:`Generator` or its ``synthesis``.
            uv_resolution: albedo resolution; None = the teacher's.

        Returns:
            AlbedoGenerator in training mode on the teacher's device.
        """
        synth = teacher.synthesis if isinstance(teacher, Generator) else teacher
        if not isinstance(synth, SynthesisNetwork):
            raise TypeError(f"from_teacher expects a Generator or SynthesisNetwork, got {type(teacher).__name__}")
        res = uv_resolution or synth.img_resolution
        g = cls(w_dim=synth.w_dim, uv_resolution=res, channel_base=synth.channel_base, channel_max=synth.channel_max,
                num_fp16_res=synth.num_fp16_res, conv_clamp=synth.conv_clamp, img_channels=synth.img_channels)
        g = g.to(next(synth.parameters()).device)
        own = g.synthesis.state_dict()
        src = synth.state_dict()
        shared = [r for r in g.synthesis.block_resolutions if r in synth.block_resolutions]
        copied = {k: v.detach().clone() for k, v in src.items() if int(k.split(".")[0][1:]) in shared}
        own.update(copied)
        g.synthesis.load_state_dict(own, strict=True)
        fresh = [r for r in g.synthesis.block_resolutions if r not in shared]
        _log.info("AlbedoGenerator.from_teacher: copied blocks %s, fresh blocks %s", shared, fresh)
        return g
