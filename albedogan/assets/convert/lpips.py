"""Perceptual-distance networks from their weight files: official LPIPS (``lpips`` package heads + torchvision's
ImageNet backbone read from a local file, never downloaded) or shift-tolerant LPIPS (weights bundled with
``stlpips-pytorch``); :func:`build_perceptual` is the factory behind ``perceptual=`` configs. The networks and the
distance module live in :mod:`albedogan.nets.perceptual`; everything here is strict (explicit key tables,
``torch.load(weights_only=True)``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from albedogan.assets.locate import AssetFormatError, AssetSpec, MissingAssetError, require_file
from albedogan.nets.perceptual import PerceptualDistance, ShiftTolerantLPIPS, check_net
from albedogan.utils.logging import get_logger

__all__ = ["TORCHVISION_BACKBONE_FILES", "build_perceptual", "find_torchvision_backbone", "load_official_lpips",
           "load_stlpips"]

_log = get_logger(__name__)


TORCHVISION_BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
"""File names torchvision's ImageNet weights have in the torch hub cache (``IMAGENET1K_V1``)."""


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"python package '{name}' is not installed; install it with `pip install {name}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on CPU; any failure becomes :class:`AssetFormatError` naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / unsafe files
        raise AssetFormatError(f"{path}: not a readable PyTorch state dict ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AssetFormatError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def load_stlpips(net: str = "alex", weights_path: str | os.PathLike | None = None) -> ShiftTolerantLPIPS:
    """ST-LPIPS with the weights bundled in ``stlpips-pytorch`` (``weights/vST0.0/<net>_shift_tolerant.pth``).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights_path: explicit weight file; default the one inside the installed package.

    Returns:
        Frozen :class:`ShiftTolerantLPIPS` in eval mode.

    Raises:
        MissingAssetError: the file is absent. AssetFormatError: keys or shapes do not match.
    """
    check_net(net)
    if weights_path is None:
        weights_path = _package_dir("stlpips_pytorch") / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    path = require_file(
        weights_path, AssetSpec(f"ST-LPIPS {net} weights", "perceptual.weights_dir", "`pip install stlpips-pytorch`")
    )
    model = ShiftTolerantLPIPS(net)
    state = _load_state_dict_file(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise AssetFormatError(f"{path}: does not match the ST-LPIPS {net} network: {err}") from err
    return model.eval().requires_grad_(False)


def find_torchvision_backbone(net: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Locate torchvision's ImageNet backbone file for LPIPS without downloading anything.

    Looks for :data:`TORCHVISION_BACKBONE_FILES` ``[net]`` in ``weights_dir`` (if given; it may also be the file
    itself), then in ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, by default
    ``~/.cache/torch/hub/checkpoints``). Returns the path, or ``None`` when absent.
    """
    check_net(net)
    name = TORCHVISION_BACKBONE_FILES[net]
    candidates = []
    if weights_dir is not None:
        p = Path(os.path.expanduser(str(weights_dir)))
        candidates += [p] if p.is_file() else [p / name, p / "checkpoints" / name]
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / name)
    return next((c for c in candidates if c.is_file()), None)


def load_official_lpips(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> nn.Module:
    """Official LPIPS (package ``lpips``, v0.1 heads) with torchvision's backbone read from ``backbone_path``.

    The ``lpips`` network is constructed with ``pretrained=False, pnet_rand=True`` (no download, no implicit
    loads); the full state dict - LPIPS' scaling buffers, the backbone mapped from torchvision's
    ``features.<i>.*`` onto ``net.slice<k>.<i>.*``, and the bundled ``lin<k>.model.1.weight`` - is then loaded
    with ``strict=True``. Only torchvision's ``classifier.*`` keys are left unused.

    Returns:
        Frozen ``lpips.LPIPS`` module in eval mode (forward takes [-1, 1] inputs, returns (N, 1, 1, 1)).

    Raises:
        MissingAssetError: a weight file is absent. AssetFormatError: keys or shapes do not match.
    """
    check_net(net)
    import lpips

    path = require_file(
        backbone_path if backbone_path is not None else find_torchvision_backbone(net),
        AssetSpec(
            f"torchvision ImageNet {net} weights ({TORCHVISION_BACKBONE_FILES[net]})",
            "perceptual.weights_dir",
            "torchvision (the IMAGENET1K_V1 weights of alexnet / vgg16), copied into $TORCH_HOME/hub/checkpoints",
        ),
    )
    lin_path = require_file(
        _package_dir("lpips") / "weights" / "v0.1" / f"{net}.pth",
        AssetSpec(f"LPIPS v0.1 {net} linear heads", "perceptual.weights_dir", "`pip install lpips`"),
    )
    backbone = _load_state_dict_file(path)  # read both files first: a corrupt file fails before any model is built
    heads = _load_state_dict_file(lin_path)  # lin<k>.model.1.weight
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained=False``
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
    state: dict[str, torch.Tensor] = {k: v for k, v in model.state_dict().items() if k.startswith("scaling_layer.")}
    used: set[str] = set()
    for key in model.state_dict():
        if not key.startswith("net.slice"):
            continue
        _, _, index, param = key.split(".", 3)  # net.slice<k>.<i>.<param>
        src = f"features.{index}.{param}"
        if src not in backbone:
            raise AssetFormatError(f"{path}: missing key {src!r} needed for LPIPS {key!r}; is this torchvision {net}?")
        state[key] = backbone[src]
        used.add(src)
    unused = sorted(k for k in backbone if k not in used and not k.startswith("classifier."))
    if unused:
        raise AssetFormatError(f"{path}: unexpected keys for torchvision {net}: {unused[:8]}")
    state.update(heads)
    for key, value in heads.items():  # newer lpips also registers the same heads as ``lins.<k>``
        alias = "lins." + key[len("lin") :]
        if alias in model.state_dict():
            state[alias] = value
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise AssetFormatError(f"{path} / {lin_path}: do not match LPIPS {net}: {err}") from err
    return model.eval().requires_grad_(False)


def build_perceptual(
    kind: str = "auto", net: str = "alex", weights_dir: str | os.PathLike | None = None
) -> PerceptualDistance:
    """Build the perceptual distance.

    Args:
        kind: ``"auto"`` (official LPIPS if torchvision's backbone file is on disk, else ST-LPIPS), ``"lpips"``
            (raises :class:`MissingAssetError` when the backbone file is absent) or ``"stlpips"``.
        net: ``"alex"`` or ``"vgg"``.
        weights_dir: folder (or file) holding torchvision's backbone weights; the torch hub cache is also
            searched (see :func:`find_torchvision_backbone`).

    Returns:
        A frozen :class:`PerceptualDistance`; which back-end runs is logged at INFO level.
    """
    check_net(net)
    if kind not in ("auto", "lpips", "stlpips"):
        raise ValueError(f"build_perceptual: kind must be 'auto', 'lpips' or 'stlpips', got {kind!r}")
    backbone = find_torchvision_backbone(net, weights_dir) if kind != "stlpips" else None
    if kind == "lpips" or (kind == "auto" and backbone is not None):
        network = load_official_lpips(net, backbone)
        _log.info("perceptual: official LPIPS (%s, torchvision backbone %s)", net, backbone)
        return PerceptualDistance(network, "lpips", net)
    if kind == "auto":
        _log.info(
            "perceptual: torchvision %s weights (%s) not found in %s or the torch hub cache; using ST-LPIPS",
            net,
            TORCHVISION_BACKBONE_FILES[net],
            weights_dir,
        )
    network = load_stlpips(net)
    _log.info("perceptual: ST-LPIPS (%s, weights bundled with stlpips-pytorch)", net)
    return PerceptualDistance(network, "stlpips", net)
