"""Load the coarse encoder ``E_flame`` from DECA's ``deca_model.tar``.

The file is a ``torch.save`` dict ``{'E_flame', 'E_detail', 'D_detail'}``; only ``E_flame`` is used (its keys:
``encoder.*`` = torchvision resnet50 names without ``fc``, ``layers.0.*`` [1024, 2048], ``layers.2.*`` [236, 1024]).
The detail networks are ignored. Loading is strict.
"""

from __future__ import annotations

import os

import torch

from albedogan.assets.convert.torch_checkpoint import check_state_dict_keys, load_torch_checkpoint, select_entry
from albedogan.assets.locate import AssetSpec
from albedogan.nets.encoder import DecaEncoder

__all__ = ["DECA_SPEC", "load_deca_encoder"]

DECA_SPEC = AssetSpec(
    name="DECA model (deca_model.tar)",
    config_key="encoder.weights_path",
    obtain="the DECA project (https://deca.is.tue.mpg.de, licence required)",
)


def load_deca_encoder(path: str | os.PathLike | None) -> DecaEncoder:
    """Build :class:`DecaEncoder` (DECA's 236-d layout) from ``deca_model.tar['E_flame']``.

    Raises:
        MissingAssetError, UnsafePickleError, AssetFormatError, CheckpointKeyError (naming file and keys).
    """
    obj = load_torch_checkpoint(path, DECA_SPEC)
    source = f"{path}['E_flame']"
    with torch.device("meta"):  # weights come from the file; skip the random init
        encoder = DecaEncoder()
    clean = check_state_dict_keys(select_entry(obj, "E_flame", str(path)), encoder.state_dict(), source)
    encoder.load_state_dict(clean, strict=True, assign=True)
    return encoder.eval()
