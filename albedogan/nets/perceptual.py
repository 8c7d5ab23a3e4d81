"""Perceptual image distances: official LPIPS when its backbone weights are on disk, else bundled ST-LPIPS.

Both are the LPIPS construction (Zhang et al. 2018): a frozen ImageNet backbone (AlexNet or VGG-16) gives five
feature maps; each is unit-normalised over channels, the squared difference of the two images' features is
weighted per channel by a learned non-negative 1x1 convolution, averaged over space, and the five terms summed.

Back-ends (:func:`build_perceptual`):

* ``"lpips"`` - the ``lpips`` package's network with its bundled v0.1 linear weights and torchvision's ImageNet
  backbone, read from a local file (``<weights_dir>/`` or the torch hub cache ``$TORCH_HOME/hub/checkpoints/``:
  ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``). The package is built with ``pnet_rand=True`` so it
  never downloads; the backbone state dict is loaded here, strictly, through an explicit key table.
* ``"stlpips"`` - shift-tolerant LPIPS (Ghildyal & Liu 2022): anti-aliased AlexNet/VGG (blur-pool downsampling)
  whose complete weights (backbone + linear heads) ship inside the ``stlpips-pytorch`` wheel. The package itself
  cannot be imported here (it imports ``torchsummary`` and ``IPython`` at module level), so the two networks are
  re-declared below with the same parameter names and the bundled files are loaded strictly.

``kind="auto"`` picks ``lpips`` when the torchvision file exists and ``stlpips`` otherwise; the choice is logged.

Input range: images are (N, 3, H, W) RGB in [0, 1]; the module maps them to [-1, 1] (``2x - 1``), which is what
the LPIPS networks were trained on, then applies LPIPS' fixed per-channel shift/scale layer. All weights are
frozen (``requires_grad=False``), the module stays in eval mode (dropout in the heads is inactive), and gradients
flow to the inputs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from albedogan.assets.locate import AssetFormatError, AssetSpec, MissingAssetError, require_file
from albedogan.utils.logging import get_logger
from albedogan.utils.shapes import assert_shape

__all__ = [
    "PerceptualDistance",
    "ShiftTolerantLPIPS",
    "TORCHVISION_BACKBONE_FILES",
    "build_perceptual",
    "find_torchvision_backbone",
    "load_official_lpips",
    "load_stlpips",
]

_log = get_logger(__name__)

TORCHVISION_BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
"""File names torchvision's ImageNet weights have in the torch hub cache (``IMAGENET1K_V1``)."""

_NETS = ("alex", "vgg")


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"python package '{name}' is not installed; install it with `pip install {name}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _check_net(net: str) -> None:
    if net not in _NETS:
        raise ValueError(f"perceptual net must be 'alex' or 'vgg', got {net!r}")


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on CPU; any failure becomes :class:`AssetFormatError` naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / unsafe files
        raise AssetFormatError(f"{path}: not a readable PyTorch state dict ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AssetFormatError(f"{path}: expected a dict of tensors (a state dict)")
    return state


# ----------------------------------------------------------------------------------------------------------------
# shared LPIPS arithmetic


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide (N, C, h, w) features by their L2 norm over channels (LPIPS' ``normalize_tensor``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class _ScalingLayer(nn.Module):
    """LPIPS' fixed input normalisation: ``(x - shift) / scale`` per RGB channel, for x in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class _LinearHead(nn.Module):
    """Per-channel weights of one layer's squared feature difference: (dropout +) 1x1 conv to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect-pad by 2, depthwise [1,2,1]x[1,2,1]/16 blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _sliced(layers: Sequence[nn.Module], cuts: Sequence[int]) -> list[nn.Sequential]:
    """Split ``layers`` at ``cuts`` into Sequentials whose children keep their global index as name."""
    bounds = [0, *cuts, len(layers)]
    slices = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        seq = nn.Sequential()
        for i in range(lo, hi):
            seq.add_module(str(i), layers[i])
        slices.append(seq)
    return slices


class _ShiftTolerantBackbone(nn.Module):
    """Anti-aliased AlexNet / VGG-16 trunk returning five ReLU feature maps (names match the ST-LPIPS files)."""

    def __init__(self, net: str) -> None:
        super().__init__()
        relu = lambda: nn.ReLU(inplace=False)  # noqa: E731 - tiny factory
        if net == "alex":
            layers: list[nn.Module] = [
                nn.Conv2d(3, 64, 11, stride=1, padding=2), _BlurPool(64), relu(),
                nn.MaxPool2d(3, stride=1), _BlurPool(64), nn.Conv2d(64, 192, 5, padding=2), relu(),
                nn.MaxPool2d(3, stride=1), _BlurPool(192), nn.Conv2d(192, 384, 3, padding=1), relu(),
                nn.Conv2d(384, 256, 3, padding=1), relu(),
                nn.Conv2d(256, 256, 3, padding=1), relu(),
            ]  # fmt: skip
            cuts = [3, 7, 11, 13]
        else:
            layers = []
            cin = 3
            for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
                if v == "M":
                    layers += [nn.MaxPool2d(2, stride=1), _BlurPool(cin)]
                else:
                    layers += [nn.Conv2d(cin, int(v), 3, padding=1), relu()]
                    cin = int(v)
            cuts = [4, 10, 18, 26]
        for k, seq in enumerate(_sliced(layers, cuts), start=1):
            self.add_module(f"slice{k}", seq)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            feats.append(x)
        return feats


class ShiftTolerantLPIPS(nn.Module):
    """ST-LPIPS network (parameter names identical to the ``stlpips-pytorch`` weight files).

    ``forward(x, y)`` takes LPIPS-range inputs (N, 3, H, W) in [-1, 1] and returns (N,) distances.
    Use :func:`load_stlpips` to get it with the bundled weights.
    """

    CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        _check_net(net)
        self.scaling_layer = _ScalingLayer()
        self.net = _ShiftTolerantBackbone(net)
        for k, c in enumerate(self.CHANNELS[net]):
            self.add_module(f"lin{k}", _LinearHead(c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.net(self.scaling_layer(x)), self.net(self.scaling_layer(y))
        total = x.new_zeros(x.shape[0])
        for k, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit_normalize(a) - _unit_normalize(b)).pow(2)  # (N, C_k, h_k, w_k)
            total = total + getattr(self, f"lin{k}")(diff).mean(dim=(1, 2, 3))
        return total


# ----------------------------------------------------------------------------------------------------------------
# loaders


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
    _check_net(net)
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
    _check_net(net)
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
    _check_net(net)
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


# ----------------------------------------------------------------------------------------------------------------
# public module


class PerceptualDistance(nn.Module):
    """LPIPS-style distance between images in [0, 1].

    Args:
        network: a network taking (x, y) in [-1, 1] and returning per-sample distances ((N,) or (N, 1, 1, 1)).
        backend: ``"lpips"`` or ``"stlpips"`` (recorded for logs and checkpoints).
        net: ``"alex"`` or ``"vgg"``.

    Forward:
        x, y: (N, 3, H, W) float RGB in [0, 1] (same shape; H, W >= 32 recommended). Returns (N,) distances
        (>= 0, ~0 for identical images, typically < 1), differentiable w.r.t. both inputs.
    """

    def __init__(self, network: nn.Module, backend: str, net: str) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.backend = backend
        self.net = net

    def train(self, mode: bool = True) -> "PerceptualDistance":
        """Keep the frozen network in eval mode (dropout off) whatever the parent module does."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert_shape(x, (None, 3, None, None), "perceptual x")
        assert_shape(y, tuple(x.shape), "perceptual y")
        out = self.network(x * 2.0 - 1.0, y * 2.0 - 1.0)  # [0, 1] -> [-1, 1], the LPIPS input range
        return out.reshape(x.shape[0])

    def extra_repr(self) -> str:
        return f"backend={self.backend}, net={self.net}"


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
    _check_net(net)
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
