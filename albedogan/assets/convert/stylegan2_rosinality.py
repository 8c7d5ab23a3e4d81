"""StyleGAN2 weights in rosinality's layout (``stylegan2-pytorch`` ``.pt``) <-> albedogan's native (NVIDIA) layout.

Both codebases are PyTorch and compute the same function, so conversion is renaming plus reshapes (no kernel
flips, no bias offsets; REFERENCE §4). The tables are explicit and strict: every target key is filled and every
source key is consumed (FIR blur kernels are checked against the [1,3,3,1] filter, not silently dropped), otherwise
:class:`KeyTableError` lists the offending keys.

Generator (R = 2^L, k = j - 3 for block ``b{2^j}``)::

    native                                  rosinality                        reshape
    mapping.fc{i}.{weight,bias}             style.{i+1}.{weight,bias}
    mapping.w_avg [w]                       latent_avg [w]  (top level of the checkpoint)
    synthesis.b4.const [C,4,4]              input.input [1,C,4,4]
    synthesis.b4.conv1.*                    conv1.*                           see layer table
    synthesis.b4.torgb.*                    to_rgb1.*                         see torgb table
    synthesis.b{2^j}.conv0.* / conv1.*      convs.{2k}.* / convs.{2k+1}.*
    synthesis.b{2^j}.torgb.*                to_rgbs.{k}.*
    b4.conv1.noise_const [4,4]              noises.noise_0 [1,1,4,4]
    b{2^j}.conv0/conv1.noise_const [r,r]    noises.noise_{2k+1} / noise_{2k+2} [1,1,r,r]
  layer: weight [O,I,3,3] -> conv.weight [1,O,I,3,3]; affine.* -> conv.modulation.*; noise_strength [] ->
         noise.weight [1]; bias -> activate.bias. Up-layers also carry conv.blur.kernel (filter x 4).
  torgb: weight [3,I,1,1] -> conv.weight [1,3,I,1,1]; affine.* -> conv.modulation.*; bias [3] -> bias [1,3,1,1];
         to_rgbs.* also carry upsample.kernel (filter x 4).

Discriminator (blocks b{R}, b{R/2}, ..., b8 -> ResBlocks j = 1, 2, ...)::

    b{R}.fromrgb.{weight,bias}      convs.0.0.weight, convs.0.1.bias
    b{r}.conv0.{weight,bias}        convs.{j}.conv1.0.weight, convs.{j}.conv1.1.bias
    b{r}.conv1.{weight,bias}        convs.{j}.conv2.1.weight, convs.{j}.conv2.2.bias   (conv2.0.kernel = blur)
    b{r}.skip.weight                convs.{j}.skip.1.weight                            (skip.0.kernel = blur)
    b4.conv.{weight,bias}           final_conv.0.weight, final_conv.1.bias
    b4.fc / b4.out                  final_linear.0 / final_linear.1

Native-only ``*.resample_filter`` buffers are produced by the native constructor; their values equal the blur kernels.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from albedogan.assets.locate import AssetFormatError
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.nets.ops import setup_filter
from albedogan.nets.stylegan2 import Discriminator, Generator
from albedogan.utils.logging import get_logger

__all__ = [
    "KeyTableError",
    "ROSINALITY_NETS",
    "generator_key_table",
    "discriminator_key_table",
    "generator_to_rosinality",
    "generator_from_rosinality",
    "discriminator_to_rosinality",
    "discriminator_from_rosinality",
    "read_rosinality_checkpoint",
    "load_rosinality",
    "fit_channel_rule",
]

_log = get_logger(__name__)

ROSINALITY_NETS = ("g_ema", "g", "d")
"""Networks a rosinality checkpoint may hold (training checkpoints: all three; converted ones: ``g_ema``)."""

# (native suffix, rosinality suffix, kind); kind names the reshape between the two layouts
_LAYER = [
    ("weight", "conv.weight", "lead1"),
    ("affine.weight", "conv.modulation.weight", "same"),
    ("affine.bias", "conv.modulation.bias", "same"),
    ("noise_strength", "noise.weight", "scalar1"),
    ("bias", "activate.bias", "same"),
]
_TORGB = [
    ("weight", "conv.weight", "lead1"),
    ("affine.weight", "conv.modulation.weight", "same"),
    ("affine.bias", "conv.modulation.bias", "same"),
    ("bias", "bias", "bias4d"),
]


class KeyTableError(AssetFormatError):
    """A state dict does not match a conversion table (missing / unexpected / mis-shaped keys)."""


def _ros_shape(native_shape: torch.Size, kind: str) -> tuple[int, ...]:
    s = tuple(native_shape)
    if kind == "same":
        return s
    if kind == "lead1":  # conv weight / const gain a leading 1
        return (1,) + s
    if kind == "scalar1":
        return (1,)
    if kind == "bias4d":
        return (1, s[0], 1, 1)
    if kind == "noise":
        return (1, 1) + s
    raise ValueError(kind)


def generator_key_table(img_resolution: int, num_mapping_layers: int) -> list[tuple[str, str, str]]:
    """Explicit (native key, rosinality key, reshape kind) rows for a generator of the given size.

    Args:
        img_resolution: output resolution R (power of two).
        num_mapping_layers: number of mapping FC layers.

    Returns:
        Rows covering every parameter and persistent buffer of both layouts except the FIR filter buffers.
    """
    rows: list[tuple[str, str, str]] = []
    for i in range(num_mapping_layers):
        rows += [(f"mapping.fc{i}.weight", f"style.{i + 1}.weight", "same"),
                 (f"mapping.fc{i}.bias", f"style.{i + 1}.bias", "same")]
    rows.append(("synthesis.b4.const", "input.input", "lead1"))
    rows += [(f"synthesis.b4.conv1.{a}", f"conv1.{b}", k) for a, b, k in _LAYER]
    rows.append(("synthesis.b4.conv1.noise_const", "noises.noise_0", "noise"))
    rows += [(f"synthesis.b4.torgb.{a}", f"to_rgb1.{b}", k) for a, b, k in _TORGB]
    for j in range(3, int(math.log2(img_resolution)) + 1):
        k, res = j - 3, 2**j
        for conv, idx in (("conv0", 2 * k), ("conv1", 2 * k + 1)):
            rows += [(f"synthesis.b{res}.{conv}.{a}", f"convs.{idx}.{b}", kd) for a, b, kd in _LAYER]
            rows.append((f"synthesis.b{res}.{conv}.noise_const", f"noises.noise_{idx + 1}", "noise"))
        rows += [(f"synthesis.b{res}.torgb.{a}", f"to_rgbs.{k}.{b}", kd) for a, b, kd in _TORGB]
    return rows


def _generator_blur_keys(img_resolution: int) -> dict[str, float]:
    """rosinality-only FIR kernel buffers of a generator -> their gain (filter x gain)."""
    out: dict[str, float] = {}
    for j in range(3, int(math.log2(img_resolution)) + 1):
        k = j - 3
        out[f"convs.{2 * k}.conv.blur.kernel"] = 4.0
        out[f"to_rgbs.{k}.upsample.kernel"] = 4.0
    return out


def discriminator_key_table(img_resolution: int) -> list[tuple[str, str, str]]:
    """Explicit (native key, rosinality key, kind) rows of a residual discriminator (FIR buffers excluded)."""
    rows = [(f"b{img_resolution}.fromrgb.weight", "convs.0.0.weight", "same"),
            (f"b{img_resolution}.fromrgb.bias", "convs.0.1.bias", "same")]
    res, j = img_resolution, 1
    while res > 4:
        rows += [
            (f"b{res}.conv0.weight", f"convs.{j}.conv1.0.weight", "same"),
            (f"b{res}.conv0.bias", f"convs.{j}.conv1.1.bias", "same"),
            (f"b{res}.conv1.weight", f"convs.{j}.conv2.1.weight", "same"),
            (f"b{res}.conv1.bias", f"convs.{j}.conv2.2.bias", "same"),
            (f"b{res}.skip.weight", f"convs.{j}.skip.1.weight", "same"),
        ]
        res, j = res // 2, j + 1
    rows += [
        ("b4.conv.weight", "final_conv.0.weight", "same"),
        ("b4.conv.bias", "final_conv.1.bias", "same"),
        ("b4.fc.weight", "final_linear.0.weight", "same"),
        ("b4.fc.bias", "final_linear.0.bias", "same"),
        ("b4.out.weight", "final_linear.1.weight", "same"),
        ("b4.out.bias", "final_linear.1.bias", "same"),
    ]
    return rows


def _discriminator_blur_keys(img_resolution: int) -> dict[str, float]:
    n_blocks = int(math.log2(img_resolution)) - 2
    out: dict[str, float] = {}
    for j in range(1, n_blocks + 1):
        out[f"convs.{j}.conv2.0.kernel"] = 1.0
        out[f"convs.{j}.skip.0.kernel"] = 1.0
    return out


def _strip_module_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    keys = list(state.keys())
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _check_keys(source: str, what: str, expected: set[str], got: set[str]) -> None:
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise KeyTableError(
            f"{source}: the {what} state dict does not match the StyleGAN2 key table.\n"
            f"  missing keys ({len(missing)}): {missing[:20]}{' ...' if len(missing) > 20 else ''}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}\n"
            "Use an unmodified rosinality stylegan2-pytorch checkpoint (skip generator, residual discriminator)."
        )


def _check_blur(source: str, state: Mapping[str, torch.Tensor], blur: Mapping[str, float]) -> None:
    f = setup_filter()
    for key, gain in blur.items():
        v = state[key]
        if tuple(v.shape) != tuple(f.shape) or not torch.allclose(v.float().cpu(), f * gain, atol=1e-6):
            raise KeyTableError(f"{source}: {key} is not the [1,3,3,1] FIR kernel x {gain:g}; only that filter is supported")


def _convert(
    source: str, what: str, table: list[tuple[str, str, str]], blur: Mapping[str, float],
    ros_state: Mapping[str, torch.Tensor], native_template: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """rosinality -> native tensors, checking key coverage in both directions and every shape."""
    _check_keys(source, what, {r for _, r, _ in table} | set(blur), set(ros_state))
    _check_blur(source, ros_state, blur)
    native_keys_in_table = {n for n, _, _ in table}
    native_expected = {k for k in native_template if not k.endswith("resample_filter")}
    if native_expected != native_keys_in_table:  # a bug in the table, not in the file
        raise KeyTableError(f"internal {what} key table mismatch: {sorted(native_expected ^ native_keys_in_table)[:10]}")
    out: dict[str, torch.Tensor] = {}
    bad: list[str] = []
    for nkey, rkey, kind in table:
        want = native_template[nkey].shape
        v = ros_state[rkey]
        if tuple(v.shape) != _ros_shape(want, kind):
            bad.append(f"{rkey}: expected {_ros_shape(want, kind)}, got {tuple(v.shape)}")
            continue
        out[nkey] = v.detach().reshape(want).clone()
    if bad:
        raise KeyTableError(f"{source}: mis-shaped {what} tensors:\n  " + "\n  ".join(bad[:20]))
    for k, v in native_template.items():
        if k.endswith("resample_filter"):
            out[k] = v.clone()
    return out


def fit_channel_rule(channels: Mapping[int, int], source: str = "<state>") -> tuple[int, int]:
    """Find (channel_base, channel_max) with ``min(channel_base // res, channel_max) == channels[res]`` for all res.

    Raises:
        AssetFormatError: when no such pair exists (non-StyleGAN2 channel layout).
    """
    cmax = max(channels.values())
    top = max(channels)
    base = channels[top] * top
    if all(min(base // r, cmax) == c for r, c in channels.items()):
        return base, cmax
    raise AssetFormatError(f"{source}: channel counts {dict(sorted(channels.items()))} do not follow the StyleGAN2 "
                           "rule min(channel_base // res, channel_max)")


def generator_to_rosinality(G: Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Native generator -> (rosinality ``g``/``g_ema`` state dict, ``latent_avg`` (w_dim,)). ``G`` is not modified."""
    sd = G.state_dict()
    table = generator_key_table(G.img_resolution, G.mapping.num_layers)
    out = {r: sd[n].detach().reshape(_ros_shape(sd[n].shape, kind)).clone() for n, r, kind in table}
    f = setup_filter()
    for key, gain in _generator_blur_keys(G.img_resolution).items():
        out[key] = f * gain
    return out, sd["mapping.w_avg"].detach().clone()


def discriminator_to_rosinality(D: Discriminator) -> dict[str, torch.Tensor]:
    """Native discriminator -> rosinality ``d`` state dict. ``D`` is not modified."""
    sd = D.state_dict()
    out = {r: sd[n].detach().clone() for n, r, _ in discriminator_key_table(D.img_resolution)}
    f = setup_filter()
    for key, gain in _discriminator_blur_keys(D.img_resolution).items():
        out[key] = f * gain
    return out


def generator_from_rosinality(
    state: Mapping[str, torch.Tensor],
    latent_avg: torch.Tensor | None = None,
    source: str = "<state>",
    mapping_lr_multiplier: float = 0.01,
) -> Generator:
    """Build a native :class:`Generator` from a rosinality generator state dict (architecture inferred from shapes).

    Args:
        state: rosinality ``g`` / ``g_ema`` state dict (``module.`` prefixes allowed).
        latent_avg: (w_dim,) mean w; None = estimated from 4096 seeded samples (:meth:`Generator.estimate_w_avg`).
        source: file name for error messages.
        mapping_lr_multiplier: rosinality's ``lr_mlp`` (0.01 by default; not stored in the file).

    Returns:
        Generator in eval mode, on CPU, float32.
    """
    state = _strip_module_prefix(state)
    try:
        n_mlp = sum(1 for k in state if k.startswith("style.") and k.endswith(".weight"))
        w_dim, z_dim = state["style.1.weight"].shape
        n_rgbs = sum(1 for k in state if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
        resolution = 2 ** (n_rgbs + 2)
        img_channels = state["to_rgb1.conv.weight"].shape[1]
        channels = {4: int(state["input.input"].shape[1])}
        for k in range(n_rgbs):
            channels[2 ** (k + 3)] = int(state[f"convs.{2 * k}.conv.weight"].shape[1])
    except (KeyError, IndexError, ValueError) as err:
        raise KeyTableError(f"{source}: not a rosinality StyleGAN2 generator state dict (cannot read {err})") from err
    base, cmax = fit_channel_rule(channels, source)
    G = Generator(z_dim=int(z_dim), w_dim=int(w_dim), img_resolution=resolution, img_channels=int(img_channels),
                  channel_base=base, channel_max=cmax, mapping_layers=n_mlp, mapping_lr_multiplier=mapping_lr_multiplier)
    template = G.state_dict()
    native = _convert(source, "generator", generator_key_table(resolution, n_mlp), _generator_blur_keys(resolution),
                      state, {k: v for k, v in template.items() if k != "mapping.w_avg"})
    native["mapping.w_avg"] = template["mapping.w_avg"]
    G.load_state_dict(native, strict=True)
    if latent_avg is not None:
        latent_avg = torch.as_tensor(latent_avg).reshape(-1)
        if latent_avg.numel() != w_dim:
            raise AssetFormatError(f"{source}: latent_avg has {latent_avg.numel()} values, expected w_dim={w_dim}")
        with torch.no_grad():
            G.mapping.w_avg.copy_(latent_avg)
    else:
        _log.info("%s: no latent_avg stored; estimating w_avg from 4096 seeded samples", source)
        G.estimate_w_avg(4096)
    return G.eval().requires_grad_(False)


def discriminator_from_rosinality(state: Mapping[str, torch.Tensor], source: str = "<state>") -> Discriminator:
    """Build a native :class:`Discriminator` from a rosinality ``d`` state dict (architecture inferred from shapes)."""
    state = _strip_module_prefix(state)
    try:
        n_blocks = sum(1 for k in state if k.startswith("convs.") and k.endswith(".conv1.0.weight"))
        resolution = 2 ** (n_blocks + 2)
        img_channels = int(state["convs.0.0.weight"].shape[1])
        channels = {resolution: int(state["convs.0.0.weight"].shape[0])}
        for j in range(1, n_blocks + 1):
            channels[resolution >> j] = int(state[f"convs.{j}.conv2.1.weight"].shape[0])
    except (KeyError, IndexError, ValueError) as err:
        raise KeyTableError(f"{source}: not a rosinality StyleGAN2 discriminator state dict (cannot read {err})") from err
    base, cmax = fit_channel_rule(channels, source)
    D = Discriminator(img_resolution=resolution, img_channels=img_channels, channel_base=base, channel_max=cmax)
    native = _convert(source, "discriminator", discriminator_key_table(resolution), _discriminator_blur_keys(resolution),
                      state, D.state_dict())
    D.load_state_dict(native, strict=True)
    return D.eval()


def read_rosinality_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a rosinality ``.pt`` with ``torch.load(weights_only=True)`` (``argparse.Namespace`` allow-listed).

    Returns:
        The checkpoint dict (``g_ema`` and optionally ``g``, ``d``, ``latent_avg``, ``args``, optimiser states).
        A bare generator state dict is returned as ``{"g_ema": state}``.

    Raises:
        UnsafePickleError: the file references anything ``weights_only`` refuses (e.g. code).
        AssetFormatError: unreadable or not a dict.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(
            f"{path}: refused by the safe loader (torch.load weights_only=True): {(str(err).splitlines() or [type(err).__name__])[0]}. "
            "The file references code or objects a weights file should not contain; do not load it."
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt archives raise RuntimeError, IndexError, KeyError, BadZipFile ...
        raise AssetFormatError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict):
        raise AssetFormatError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    ckpt = _strip_module_prefix(ckpt) if "module.style.1.weight" in ckpt else ckpt
    if "style.1.weight" in ckpt:
        ckpt = {"g_ema": ckpt}
    return ckpt


def load_rosinality(
    path: str | os.PathLike, which: str = "g_ema", mapping_lr_multiplier: float = 0.01
) -> Generator | Discriminator:
    """Load one network (``g_ema``, ``g`` or ``d``) from a rosinality checkpoint into the native classes.

    Args:
        path: ``.pt`` file.
        which: ``"g_ema"``, ``"g"`` or ``"d"``.
        mapping_lr_multiplier: rosinality ``lr_mlp`` used in training (0.01 unless changed).

    Returns:
        :class:`Generator` (eval mode, frozen) or :class:`Discriminator` (eval mode).
    """
    if which not in ROSINALITY_NETS:
        raise ValueError(f"which must be one of {ROSINALITY_NETS}, got {which!r}")
    ckpt = read_rosinality_checkpoint(path)
    if which not in ckpt:
        raise AssetFormatError(f"{path}: checkpoint has no '{which}' entry (it has {sorted(map(str, ckpt))}); "
                               f"pick one of {[n for n in ROSINALITY_NETS if n in ckpt]}")
    if which == "d":
        return discriminator_from_rosinality(ckpt["d"], source=f"{path}[d]")
    latent_avg = ckpt.get("latent_avg")
    return generator_from_rosinality(ckpt[which], latent_avg, source=f"{path}[{which}]",
                                     mapping_lr_multiplier=mapping_lr_multiplier)

