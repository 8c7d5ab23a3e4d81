"""Load MICA's ``mica.tar``: ``{'arcface': iresnet100 state dict, 'flameModel': state dict}``.

From ``flameModel`` only the mapping network is taken (``regressor.network.{0..3}.*``, ``regressor.output.*``);
the FLAME buffers stored under ``generator.*`` are ignored on purpose (albedogan's FLAME layer loads FLAME from its
own asset). Every other key is an error.
"""

from __future__ import annotations

import os

import torch

from albedogan.assets.convert.arcface import arcface_from_state_dict
from albedogan.assets.convert.torch_checkpoint import check_state_dict_keys, load_torch_checkpoint, select_entry
from albedogan.assets.locate import AssetSpec
from albedogan.nets.mica import MICA, MappingNetwork

__all__ = ["MICA_SPEC", "load_mica"]

MICA_SPEC = AssetSpec(
    name="MICA model (mica.tar)",
    config_key="shape.mica_path",
    obtain="the MICA project (https://zielon.github.io/mica/, licence required)",
)

_IGNORED_PREFIXES = ("generator.",)
_REGRESSOR_PREFIX = "regressor."


def load_mica(path: str | os.PathLike | None, freeze_lower: bool = True) -> MICA:
    """Build :class:`MICA` from ``mica.tar`` (strict on both entries).

    Args:
        path: the ``mica.tar`` file.
        freeze_lower: apply MICA's ArcFace freezing rule (conv1..layer3 frozen).

    Returns:
        :class:`MICA` in eval mode on the CPU.

    Raises:
        MissingAssetError, UnsafePickleError, AssetFormatError, CheckpointKeyError (naming the file and entry).
    """
    obj = load_torch_checkpoint(path, MICA_SPEC)
    source = str(path)
    arcface = arcface_from_state_dict(
        select_entry(obj, "arcface", source), f"{source}['arcface']", freeze_lower=freeze_lower
    )
    flame_state = select_entry(obj, "flameModel", source)
    with torch.device("meta"):
        regressor = MappingNetwork()
    wanted = {_REGRESSOR_PREFIX + k: v for k, v in regressor.state_dict().items()}
    clean = check_state_dict_keys(
        flame_state, wanted, f"{source}['flameModel']", ignore_prefixes=_IGNORED_PREFIXES,
        hint="expected the mapping network 512->300, 3x 300->300, output 300->300 plus generator.* FLAME buffers",
    )
    regressor.load_state_dict({k[len(_REGRESSOR_PREFIX):]: v for k, v in clean.items()}, strict=True, assign=True)
    return MICA(arcface, regressor).eval()
