"""StyleGAN2 (config E/F) networks in pure PyTorch, with NVIDIA's parameter names.

Built bottom-up on the ops of :mod:`albedogan.nets.ops` (FIR resampling, bias + activation, modulated
convolution): equalised-lr layers -> synthesis layers/blocks -> :class:`MappingNetwork`, :class:`SynthesisNetwork`,
:class:`Generator`, :class:`Discriminator`. Parameter and buffer names follow NVlabs stylegan2-ada-pytorch / stylegan3
(``mapping.fc{i}``, ``mapping.w_avg``, ``synthesis.b{res}.{const,conv0,conv1,torgb}...``, ``*.resample_filter``,
D ``b{res}.{fromrgb,conv0,conv1,skip}``, ``b4.{conv,fc,out}``), so their state dicts load strictly; foreign formats
are converted in :mod:`albedogan.assets.convert`.

Conventions (all networks):
    * latents ``z``: (N, z_dim) float32, standard normal; ``w``: (N, w_dim); ``ws`` (W+): (N, num_ws, w_dim).
    * images: (N, C, H, W) float32, channels RGB, nominal range [-1, 1] (not clamped), row 0 = top.
    * fp16 is used only for blocks flagged by ``num_fp16_res`` and only on CUDA; the CPU path is always float32.
    * under autocast (``bf16-mixed``) the convolutions run in the autocast dtype, the flagged blocks cast to it
      instead of fp16, and the mapping network, the style affines, the demodulation coefficients and the image
      skip path are fp32 islands (:mod:`albedogan.utils.precision`); ``conv_clamp`` clamps every conv output as in
      NVIDIA's code (the guard that keeps reduced-precision activations bounded).

The custom CUDA kernels of the official code are replaced by fused ``conv2d`` / ``conv_transpose2d`` calls in
:mod:`albedogan.nets.ops`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.nets.ops import LRELU_GAIN, bias_act, blur, downsample2d, modulated_conv2d, setup_filter, upsample2d
from albedogan.utils.precision import float32_region, fp32_island
from albedogan.utils.shapes import assert_shape

__all__ = [
    "normalize_2nd_moment",
    "FullyConnectedLayer",
    "Conv2dLayer",
    "MappingNetwork",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "MinibatchStdLayer",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "Discriminator",
    "channels_for",
    "reduced_dtype",
    "set_channels_last",
    "mix_styles",
    "truncate",
    "NOISE_MODES",
]

NOISE_MODES = ("random", "const", "none")
"""Allowed ``noise_mode`` values: fresh N(0,1) noise, the stored ``noise_const`` buffers, or no noise."""


# ----------------------------------------------------------------------------------------------------------------
# Normalisation


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` so its mean square along ``dim`` is 1 (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ----------------------------------------------------------------------------------------------------------------
# Equalised-learning-rate layers


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: ``y = act(x @ (W * lr/√in)^T + b * lr)``.

    Args:
        in_features: input width.
        out_features: output width.
        bias: learn an additive bias.
        activation: ``"linear"`` or ``"lrelu"``.
        lr_multiplier: learning-rate multiplier (0.01 in the mapping network); the stored weight is init/lr.
        bias_init: initial bias value (1 for style affines so styles start at 1).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_features) -> (N, out_features)."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with 'same' padding, optional FIR downsampling by 2, bias, activation, clamp.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: odd kernel size.
        bias: learn a bias.
        activation: ``"linear"`` or ``"lrelu"``.
        down: 1 or 2 (FIR filter then strided conv; for 1x1 kernels filter+subsample then conv).
        resample_filter: 1D taps of the FIR filter (stored as the ``resample_filter`` buffer, as in NVIDIA's code).
        conv_clamp: clamp outputs to ±conv_clamp·gain; None = off.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"Conv2dLayer: down must be 1 or 2, got {down}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """x: (N, in_channels, H, W) -> (N, out_channels, H/down, W/down)."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        f = self.resample_filter
        k = w.shape[-1]
        if self.down == 1:
            x = F.conv2d(x, w, padding=self.padding)
        elif k == 1:
            x = F.conv2d(downsample2d(x, f), w)
        else:  # FIR with padding (K - 2 + 1)//2 + k//2 on each side, then the strided conv (valid)
            x = blur(x, f, pad=(f.shape[0] - 1) // 2 + self.padding)
            x = F.conv2d(x, w, stride=2)
        act_gain = (LRELU_GAIN if self.activation == "lrelu" else 1.0) * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=act_gain, clamp=clamp)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, activation={self.activation}, down={self.down}"


# ----------------------------------------------------------------------------------------------------------------
# Mapping network


class MappingNetwork(nn.Module):
    """z -> w: 2nd-moment normalisation then ``num_layers`` lrelu FC layers (``fc0``..), broadcast to W+.

    ``w_avg`` (a buffer) tracks the running mean of w in training mode: ``w_avg <- mean(w) + beta * (w_avg - mean(w))``;
    truncation moves w toward it.

    Args:
        z_dim: latent size of z.
        w_dim: latent size of w.
        num_ws: number of W+ rows to broadcast to.
        num_layers: FC layers (8 in StyleGAN2).
        lr_multiplier: learning-rate multiplier of the FC layers (0.01).
        w_avg_beta: decay of the running mean of w.
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        feats = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation="lrelu", lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @fp32_island
    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        """Map z to W+ (an fp32 island under autocast).

        Args:
            z: (N, z_dim) float, standard normal.
            truncation_psi: 1 = no truncation, 0 = every row equals ``w_avg``; ``w_avg.lerp(w, psi)``.
            truncation_cutoff: truncate only rows ``[:cutoff]`` (None = all rows).
            update_w_avg: in training mode, update the running mean ``w_avg`` (never in eval mode).

        Returns:
            ws: (N, num_ws, w_dim) float32.
        """
        assert_shape(z, [None, self.z_dim], "z")
        x = normalize_2nd_moment(z.to(torch.float32))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).expand(-1, self.num_ws, -1)  # (N, num_ws, w_dim)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, num_layers={self.num_layers}"


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """Truncation trick: rows ``[:cutoff]`` (all when None) become ``w_avg + psi * (w - w_avg)``.

    Args:
        ws: (N, num_ws, w_dim).
        w_avg: (w_dim,).
        psi: truncation strength; 1 returns ``ws`` unchanged.
        cutoff: number of leading rows to truncate.

    Returns:
        (N, num_ws, w_dim) new tensor (``ws`` is not modified).
    """
    if psi == 1:
        return ws
    t = w_avg.to(ws.dtype).lerp(ws, psi)
    if cutoff is None or cutoff >= ws.shape[1]:
        return t
    return torch.cat([t[:, :cutoff], ws[:, cutoff:]], dim=1)


def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Style mixing: rows ``[:cutoff]`` (coarse styles) from ``ws_a``, rows ``[cutoff:]`` from ``ws_b``.

    Args:
        ws_a, ws_b: (N, num_ws, w_dim).
        cutoff: 0..num_ws.

    Returns:
        (N, num_ws, w_dim).
    """
    if ws_a.shape != ws_b.shape:
        raise ValueError(f"mix_styles: shapes differ {tuple(ws_a.shape)} vs {tuple(ws_b.shape)}")
    if not 0 <= cutoff <= ws_a.shape[1]:
        raise ValueError(f"mix_styles: cutoff {cutoff} outside [0, {ws_a.shape[1]}]")
    return torch.cat([ws_a[:, :cutoff], ws_b[:, cutoff:]], dim=1)


# ----------------------------------------------------------------------------------------------------------------
# Synthesis network


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsample), per-pixel noise, bias, lrelu (gain √2), optional clamp.

    Buffers/params: ``weight`` (O, I, 3, 3), ``bias`` (O,), ``affine`` (w -> I styles, bias init 1),
    ``noise_strength`` (scalar), ``noise_const`` (R, R), ``resample_filter`` (4, 4).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1.0,
        noise_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (N, I, R/up, R/up), w: (N, w_dim) -> (N, O, R, R).

        ``noise_input``: explicit unit noise broadcastable to (N, 1, R, R) (rosinality's ``noise=`` entry, NVIDIA's
        ``noise_const`` buffer); scaled by ``noise_strength`` and used instead of ``noise_mode``'s.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        with float32_region():
            styles = self.affine(w.float())  # (N, I) fp32 (an island under autocast)
        noise = None
        if self.use_noise and noise_input is not None:
            noise = noise_input.to(x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, resample_filter=self.resample_filter,
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act="lrelu", gain=LRELU_GAIN * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation (styles scaled by 1/√(I·k²)) + bias (+ clamp): features -> RGB."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        """x: (N, I, R, R), w: (N, w_dim) -> (N, out_channels, R, R)."""
        with float32_region():
            styles = self.affine(w.float()) * self.weight_gain  # (N, I) fp32
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' generator: [const | conv0 (up 2)] -> conv1 -> torgb, image skip upsampled.

    ``num_conv`` ws are consumed by the convs; the torgb uses the next row (shared with the next block's conv0).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1
        self.channels_last = False  # execution option (set_channels_last), not architecture

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        noise: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, I, R/2, R/2) or None, img: (N, C, R/2, R/2) or None, ws: (N, num_conv+1, w_dim); ``noise``: None or
        one explicit unit-noise tensor per conv layer (see :meth:`SynthesisLayer.forward`).

        Returns:
            x: (N, O, R, R) features; img: (N, C, R, R) float32 running image.
        """
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], f"ws of block b{self.resolution}")
        dtype = reduced_dtype(self.use_fp16 and not force_fp32, ws.device)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = not self.training
        w_rows = ws.unbind(dim=1)
        n0, n1 = (None, None) if noise is None else ((None, noise[0]) if self.in_channels == 0 else tuple(noise))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            if self.channels_last:
                x = x.contiguous(memory_format=memory_format)
            x = self.conv1(x, w_rows[0], noise_mode=noise_mode, fused_modconv=fused_modconv, noise_input=n1)
        else:
            assert_shape(x, [ws.shape[0], self.in_channels, self.resolution // 2, self.resolution // 2], "x")
            x = self.conv0(x.to(dtype=dtype, memory_format=memory_format), w_rows[0], noise_mode=noise_mode, fused_modconv=fused_modconv, noise_input=n0)
            x = self.conv1(x, w_rows[1], noise_mode=noise_mode, fused_modconv=fused_modconv, noise_input=n1)
        y = self.torgb(x, w_rows[self.num_conv], fused_modconv=fused_modconv).to(torch.float32)
        if img is not None:
            with float32_region():  # the running image stays fp32 (NVIDIA), also under autocast
                y = upsample2d(img, self.resample_filter) + y
        return x, y


def set_channels_last(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Run every synthesis / discriminator block inside ``module`` on channels_last activations (NVIDIA's
    ``fp16_channels_last``, here for every block; faster convolutions on tensor-core GPUs, the same function).

    An execution option, not architecture: parameters, ``state_dict`` and ``init_kwargs`` are unchanged.

    Returns:
        ``module``.
    """
    for m in module.modules():
        if isinstance(m, (SynthesisBlock, DiscriminatorBlock)):
            m.channels_last = bool(enabled)
    return module


def reduced_dtype(reduced: bool, device: torch.device) -> torch.dtype:
    """Activation dtype of a block: float32, or for a block flagged by ``num_fp16_res`` (``reduced``) the autocast
    dtype when autocast is on for ``device`` (bf16-mixed: no fp16 -> bf16 double rounding), else float16 on CUDA
    (NVIDIA's fp16 blocks) and float32 elsewhere."""
    if not reduced:
        return torch.float32
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return torch.float16 if device.type == "cuda" else torch.float32


def channels_for(resolutions: Sequence[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """NVIDIA channel rule ``{res: min(channel_base // res, channel_max)}`` (config-f: base 32768, max 512)."""
    return {r: min(channel_base // r, channel_max) for r in resolutions}


def _check_resolution(res: int, what: str) -> int:
    if not isinstance(res, int) or res < 8 or res > 4096 or res & (res - 1):
        raise ValueError(f"{what}: resolution must be a power of two in [8, 4096], got {res!r}")
    return res


class SynthesisNetwork(nn.Module):
    """W+ -> image: blocks ``b4, b8, ..., b{img_resolution}`` ('skip' architecture).

    Args:
        w_dim: latent size.
        img_resolution: output size R (power of two, 8..4096).
        img_channels: output channels (3).
        channel_base, channel_max: channel rule ``min(channel_base // res, channel_max)``.
        num_fp16_res: blocks at the N highest resolutions run in fp16 on CUDA (never on CPU).
        conv_clamp: clamp of every conv output (256 with fp16), None = off.

    Attributes:
        channels: ``{res: channels}`` of every block; the constructor arguments are kept under their own names.
        num_ws: W+ rows consumed (2·log2(R) − 2).
    """

    def __init__(
        self,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        _check_resolution(img_resolution, "SynthesisNetwork")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.num_fp16_res = num_fp16_res
        self.conv_clamp = conv_clamp
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        self.channels = channels_for(self.block_resolutions, channel_base, channel_max)
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8) if num_fp16_res > 0 else img_resolution * 2
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = self.channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_ch, self.channels[res], w_dim, res, img_channels,
                                   use_fp16=res >= fp16_resolution, conv_clamp=conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last torgb

    def block_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Split W+ (N, num_ws, w_dim) into per-block views (N, num_conv + 1, w_dim) (torgb shares a row)."""
        out, idx = [], 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out.append(ws.narrow(1, idx, block.num_conv + block.num_torgb))
            idx += block.num_conv
        return out

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        noise: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Synthesise images.

        Args:
            ws: (N, num_ws, w_dim) W+ latents.
            noise_mode: ``"random"``, ``"const"`` (deterministic) or ``"none"``.
            fused_modconv: None = fused in eval mode, unfused in training mode.
            force_fp32: disable fp16 blocks even on CUDA.
            noise: None, or explicit unit noise per conv layer, ``num_ws - 1`` tensors broadcastable to (N, 1, r, r)
                in rosinality's ``noise=`` order (b4.conv1, b8.conv0, b8.conv1, b16.conv0, ...): the layout of
                :meth:`noise_buffers` (NVIDIA's ``noise_const`` per layer). Each is scaled by its layer's
                ``noise_strength``; overrides ``noise_mode``. Differentiable (a projector may optimise them).

        Returns:
            (N, img_channels, R, R) float32 images, nominal range [-1, 1].
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if noise is not None and len(noise) != self.num_ws - 1:
            raise ValueError(f"synthesis: noise must hold {self.num_ws - 1} per-layer tensors (one per conv layer, "
                             f"b4.conv1, b8.conv0, b8.conv1, ...), got {len(noise)}")
        ws = ws.to(torch.float32)
        x = img = None
        k = 0
        for res, cur in zip(self.block_resolutions, self.block_ws(ws)):
            block = getattr(self, f"b{res}")
            per_block = None if noise is None else noise[k:k + block.num_conv]
            k += block.num_conv
            x, img = block(x, img, cur, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32,
                           noise=per_block)
        return img

    def noise_buffers(self) -> list[torch.Tensor]:
        """The stored ``noise_const`` of every conv layer (each (1, 1, r, r)), in the order ``noise=`` takes."""
        out = []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            convs = [block.conv1] if block.in_channels == 0 else [block.conv0, block.conv1]
            out += [c.noise_const[None, None] for c in convs]
        return out


class Generator(nn.Module):
    """StyleGAN2 generator: ``mapping`` (z -> W+) and ``synthesis`` (W+ -> image) as separate submodules.

    Args:
        z_dim, w_dim: latent sizes (512 for FFHQ).
        img_resolution: output size (1024 for FFHQ).
        img_channels: 3.
        channel_base, channel_max: channel rule (config-f: 32768, 512).
        num_fp16_res, conv_clamp: GPU mixed precision (e.g. 4 and 256); fp16 is never used on CPU.
        mapping_layers, mapping_lr_multiplier, w_avg_beta: mapping network options.

    Attributes:
        init_kwargs: the constructor arguments, so ``Generator(**G.init_kwargs)`` rebuilds the architecture.
        num_ws: number of W+ rows (18 at 1024², 14 at 256²).
    """

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            z_dim=z_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
            mapping_layers=mapping_layers, mapping_lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta,
        )
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max,
                                          num_fp16_res, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        noise: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """z: (N, z_dim) -> images (N, img_channels, R, R) float32, nominal range [-1, 1] (``noise``: see
        :meth:`SynthesisNetwork.forward`)."""
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32,
                              noise=noise)

    @torch.no_grad()
    def estimate_w_avg(self, num_samples: int = 4096, seed: int = 0, batch: int = 1024) -> torch.Tensor:
        """Set ``mapping.w_avg`` to the mean w of ``num_samples`` seeded z samples (used when a file has none).

        Returns:
            (w_dim,) the new ``w_avg``.
        """
        gen = torch.Generator().manual_seed(seed)
        dev = self.mapping.w_avg.device
        total = torch.zeros(self.w_dim, dtype=torch.float64, device=dev)
        done = 0
        while done < num_samples:
            n = min(batch, num_samples - done)
            z = torch.randn(n, self.z_dim, generator=gen).to(dev)
            total += self.mapping(z, update_w_avg=False)[:, 0].sum(0).double()  # (w_dim,)
            done += n
        self.mapping.w_avg.copy_((total / num_samples).to(self.mapping.w_avg.dtype))
        return self.mapping.w_avg.clone()


# ----------------------------------------------------------------------------------------------------------------
# Discriminator


class MinibatchStdLayer(nn.Module):
    """Append the mean (over channels/pixels) std-dev across groups of ``group_size`` samples as extra channels.

    x: (N, C, H, W) -> (N, C + num_channels, H, W); N must be divisible by min(group_size, N).
    """

    def __init__(self, group_size: int | None = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"MinibatchStdLayer: batch size {n} is not divisible by the group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # (G, n, F, c, H, W)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # (n, F, c, H, W)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (n, F)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual D block at resolution R: [fromrgb] -> conv0 -> conv1 (down 2) + skip (1x1, down 2), both ×√½."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter)
        self.channels_last = False  # execution option (set_channels_last), not architecture

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False) -> torch.Tensor:
        """x: (N, C, R, R) features (None for the first block, then ``img`` (N, 3, R, R) is used) -> (N, O, R/2, R/2)."""
        ref = x if x is not None else img
        dtype = reduced_dtype(self.use_fp16 and not force_fp32, ref.device)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.in_channels == 0:
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            x = self.fromrgb(img.to(dtype=dtype, memory_format=memory_format))
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch std -> conv 3x3 -> fc (lrelu) -> out (1 logit)."""

    def __init__(self, in_channels: int, resolution: int = 4, mbstd_group_size: int | None = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, 4, 4) -> logits (N, 1)."""
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], "x")
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator (unconditional): blocks ``b{R}, ..., b8`` then the epilogue ``b4``.

    Args:
        img_resolution: input size R (power of two, 8..4096).
        img_channels: 3.
        channel_base, channel_max: channel rule (config-f: 32768, 512).
        num_fp16_res, conv_clamp: GPU mixed precision; fp16 never used on CPU.
        mbstd_group_size, mbstd_num_channels: minibatch std-dev layer.

    Attributes:
        init_kwargs: constructor arguments (``Discriminator(**D.init_kwargs)`` rebuilds it).
    """

    def __init__(
        self,
        img_resolution: int = 1024,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
    ) -> None:
        super().__init__()
        _check_resolution(img_resolution, "Discriminator")
        self.init_kwargs: dict[str, Any] = dict(
            img_resolution=img_resolution, img_channels=img_channels, channel_base=channel_base,
            channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
            mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels,
        )
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        self.channels = channels_for(self.block_resolutions + [4], channel_base, channel_max)
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8) if num_fp16_res > 0 else img_resolution * 2
        for res in self.block_resolutions:
            in_ch = self.channels[res] if res < img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_ch, self.channels[res], self.channels[res // 2], res,
                                                        img_channels, use_fp16=res >= fp16_resolution,
                                                        conv_clamp=conv_clamp))
        self.b4 = DiscriminatorEpilogue(self.channels[4], 4, mbstd_group_size, mbstd_num_channels, conv_clamp)

    def forward(self, img: torch.Tensor, force_fp32: bool = False) -> torch.Tensor:
        """img: (N, img_channels, R, R) in [-1, 1] -> realness logits (N, 1) float32."""
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        return self.b4(x)
