"""One-call loading of official StyleGAN2 checkpoints into albedogan's native networks.

Two formats are understood, detected from the file extension and confirmed from the first bytes:

* rosinality ``stylegan2-pytorch`` ``.pt`` / ``.pth`` (a ``torch.save`` zip; networks ``g_ema``, ``g``, ``d``),
  read with ``torch.load(weights_only=True)`` -- :mod:`albedogan.assets.convert.stylegan2_rosinality`;
* NVIDIA stylegan2-ada-pytorch / stylegan3 ``.pkl`` (networks ``G_ema``, ``G``, ``D``), read through an allow-listed
  unpickler that never executes the pickled source -- :mod:`albedogan.assets.convert.stylegan2_nvidia`.

Example::

    from albedogan.assets.stylegan2 import load_stylegan2
    G = load_stylegan2("checkpoints/stylegan2-ffhq-config-f.pt")          # g_ema, eval mode, frozen
    ws = G.mapping(torch.randn(4, G.z_dim), truncation_psi=0.5)            # (4, 18, 512)
    img = G.synthesis(ws, noise_mode="const")                               # (4, 3, 1024, 1024) in ~[-1, 1]
"""

from __future__ import annotations

import os
from pathlib import Path

from albedogan.assets.convert.stylegan2_nvidia import load_nvidia
from albedogan.assets.convert.stylegan2_rosinality import load_rosinality
from albedogan.assets.locate import AssetFormatError, AssetSpec, require_file
from albedogan.nets.stylegan2 import Discriminator, Generator

__all__ = ["STYLEGAN2_SPEC", "detect_stylegan2_format", "load_stylegan2", "load_stylegan2_discriminator"]

STYLEGAN2_SPEC = AssetSpec(
    name="StyleGAN2 FFHQ checkpoint (rosinality .pt or NVIDIA .pkl)",
    config_key="teacher.checkpoint",
    obtain="https://github.com/NVlabs/stylegan2-ada-pytorch (ffhq.pkl) or https://github.com/rosinality/stylegan2-pytorch",
)

_WHICH = {"g_ema": ("g_ema", "G_ema"), "g": ("g", "G")}
_ZIP_MAGIC = b"PK\x03\x04"


def detect_stylegan2_format(path: str | os.PathLike) -> str:
    """Return ``"rosinality"`` or ``"nvidia"`` for a checkpoint file.

    The extension decides (``.pt``/``.pth`` vs ``.pkl``); for other extensions the first bytes do (a zip archive is
    a ``torch.save`` file, a protocol-2+ pickle header is an NVIDIA snapshot).

    Raises:
        AssetFormatError: unknown format, or an extension that contradicts the content; names the file.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    is_zip = head.startswith(_ZIP_MAGIC)
    is_pickle = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    ext = path.suffix.lower()
    if ext in (".pt", ".pth") and (is_zip or is_pickle):
        return "rosinality"  # legacy (pre-1.6) torch.save files are plain pickles
    if ext == ".pkl" and is_pickle:
        return "nvidia"
    if ext not in (".pt", ".pth", ".pkl"):
        if is_zip:
            return "rosinality"
        if is_pickle:
            return "nvidia"
    raise AssetFormatError(
        f"{path}: not a recognised StyleGAN2 checkpoint (extension {ext or '<none>'!r}, first bytes {head!r}). "
        "Expected a rosinality stylegan2-pytorch .pt or an NVIDIA stylegan2-ada/stylegan3 .pkl."
    )


def load_stylegan2(path: str | os.PathLike, which: str = "g_ema", mapping_lr_multiplier: float = 0.01) -> Generator:
    """Load a StyleGAN2 generator from a rosinality ``.pt`` or an NVIDIA ``.pkl``.

    Args:
        path: checkpoint file.
        which: ``"g_ema"`` (the EMA generator, default) or ``"g"`` (the raw training generator); the NVIDIA names
            ``"G_ema"`` / ``"G"`` are accepted too.
        mapping_lr_multiplier: rosinality ``lr_mlp`` (0.01; NVIDIA files record it themselves).

    Returns:
        :class:`~albedogan.nets.stylegan2.Generator` on CPU, float32, eval mode, ``requires_grad=False``, with
        ``mapping.w_avg`` set (stored mean w, or estimated from 4096 seeded samples when the file has none).

    Raises:
        MissingAssetError: the file does not exist.
        AssetFormatError: unknown format or keys that do not match a StyleGAN2 generator.
        UnsafePickleError: the file would run code when loaded.
    """
    key = which.lower()
    if key not in _WHICH:
        raise ValueError(f"which must be 'g_ema' or 'g' (or 'G_ema'/'G'), got {which!r}")
    path = require_file(path, STYLEGAN2_SPEC)
    if detect_stylegan2_format(path) == "rosinality":
        net = load_rosinality(path, _WHICH[key][0], mapping_lr_multiplier=mapping_lr_multiplier)
    else:
        net = load_nvidia(path, _WHICH[key][1])
    assert isinstance(net, Generator)
    return net


def load_stylegan2_discriminator(path: str | os.PathLike) -> Discriminator:
    """Load the StyleGAN2 discriminator (rosinality ``d`` / NVIDIA ``D``) in eval mode; same errors as above."""
    path = require_file(path, STYLEGAN2_SPEC)
    net = load_rosinality(path, "d") if detect_stylegan2_format(path) == "rosinality" else load_nvidia(path, "D")
    assert isinstance(net, Discriminator)
    return net
