"""Load insightface ArcFace iresnet weights: ``backbone.pth`` (arcface_torch) or the ``arcface`` entry of MICA's ``mica.tar``.

Both are plain state dicts in :class:`albedogan.nets.arcface.IResNet`'s key layout. The depth (50 or 100) is read
from the number of blocks per stage found in the keys; loading is strict (one :class:`CheckpointKeyError` listing
the file and every missing / unexpected key) and never unpickles anything but tensors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from albedogan.assets.convert.torch_checkpoint import (
    check_state_dict_keys,
    load_torch_checkpoint,
    select_entry,
)
from albedogan.assets.locate import AssetFormatError, AssetSpec
from albedogan.nets.arcface import IRESNET_LAYERS, IResNet

__all__ = ["ARCFACE_SPEC", "arcface_from_state_dict", "infer_iresnet_depth", "load_arcface"]

ARCFACE_SPEC = AssetSpec(
    name="ArcFace iresnet weights (insightface arcface_torch backbone.pth, e.g. ms1mv3_arcface_r100)",
    config_key="identity.weights_path",
    obtain="the insightface model zoo (arcface_torch), or the 'arcface' entry of MICA's mica.tar",
)

_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def infer_iresnet_depth(state: Mapping[str, torch.Tensor], source: str = "<state dict>") -> int:
    """Return 50 or 100 from the blocks per stage present in ``state``'s keys.

    Raises:
        AssetFormatError: the block counts match no supported iresnet.
    """
    counts = [0, 0, 0, 0]
    for key in state:
        m = _BLOCK_KEY.match(str(key))
        if m:
            stage, idx = int(m.group(1)) - 1, int(m.group(2))
            counts[stage] = max(counts[stage], idx + 1)
    for depth, layers in IRESNET_LAYERS.items():
        if tuple(counts) == layers:
            return depth
    known = ", ".join(f"iresnet{d}={layers}" for d, layers in IRESNET_LAYERS.items())
    raise AssetFormatError(
        f"{source}: blocks per stage {tuple(counts)} match no supported ArcFace backbone ({known}); "
        "is this an insightface arcface_torch iresnet state dict?"
    )


def arcface_from_state_dict(
    state: Mapping[str, torch.Tensor], source: str = "<state dict>", freeze_lower: bool = False
) -> IResNet:
    """Build an :class:`IResNet` of the right depth and load ``state`` strictly.

    Args:
        state: insightface-layout state dict (``conv1.weight``, ``layer1.0.bn1.weight``, ..., ``features.*``).
        source: name used in errors (file and entry).
        freeze_lower: apply MICA's freezing rule (see :class:`IResNet`).

    Returns:
        The network in eval mode on the CPU.
    """
    depth = infer_iresnet_depth(state, source)
    with torch.device("meta"):  # no wasted random init: every tensor comes from the file
        net = IResNet(IRESNET_LAYERS[depth], freeze_lower=freeze_lower)
    clean = check_state_dict_keys(state, net.state_dict(), source)
    net.load_state_dict(clean, strict=True, assign=True)
    return net.eval()


def load_arcface(path: str | os.PathLike | None, entry: str | None = None, freeze_lower: bool = False) -> IResNet:
    """Load ArcFace weights from ``backbone.pth`` or from MICA's ``mica.tar``.

    Args:
        path: the file. A plain state dict is used as is; a dict holding an ``arcface`` entry (``mica.tar``) uses
            that entry.
        entry: force a specific top-level entry (``"arcface"``); ``None`` detects it.
        freeze_lower: apply MICA's freezing rule.

    Returns:
        :class:`IResNet` (iresnet50 or iresnet100) in eval mode.

    Raises:
        MissingAssetError, UnsafePickleError, AssetFormatError, CheckpointKeyError.
    """
    obj = load_torch_checkpoint(path, ARCFACE_SPEC)
    source = str(path)
    if entry is None and isinstance(obj, Mapping) and "arcface" in obj:
        entry = "arcface"
    if entry is not None:
        state = select_entry(obj, entry, source)
        source = f"{source}['{entry}']"
    elif isinstance(obj, Mapping):
        state = obj
    else:
        raise AssetFormatError(f"{source}: expected a state dict, found {type(obj).__name__}")
    return arcface_from_state_dict(state, source, freeze_lower=freeze_lower)
