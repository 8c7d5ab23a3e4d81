"""Load the coarse encoder ``E_flame`` from DECA's ``deca_model.tar``.

The file is a ``torch.save`` dict ``{'E_flame', 'E_detail', 'D_detail'}``. ``E_flame`` keys: ``encoder.*`` =
torchvision resnet50 names without ``fc``, ``layers.0.*`` [1024, 2048], ``layers.2.*`` [236, 1024]. ``E_detail``:
the same with ``layers.2.*`` [128, 1024]. ``D_detail``: ``l1.0.*`` [8192, 181], ``conv_blocks.{0,3,7,11,15,19}``
BatchNorm (weight, bias, running stats, ``num_batches_tracked``) and ``conv_blocks.{2,6,10,14,18,21}`` convs (see
:mod:`albedogan.nets.deca_detail`). Loading is strict; :func:`load_deca_detail` returns None when a file carries
no detail networks (empty entries).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from albedogan.assets.convert.torch_checkpoint import check_state_dict_keys, load_torch_checkpoint, select_entry
from albedogan.assets.locate import AssetSpec
from albedogan.nets.deca_detail import DetailDecoder, DetailEncoder
from albedogan.nets.encoder import DecaEncoder

__all__ = ["DECA_SPEC", "load_deca_detail", "load_deca_encoder", "read_deca"]

DECA_SPEC = AssetSpec(
    name="DECA model (deca_model.tar)",
    config_key="encoder.weights_path",
    obtain="the DECA project (https://deca.is.tue.mpg.de, licence required)",
)


def read_deca(path: str | os.PathLike | None) -> Any:
    """The contents of ``deca_model.tar`` (safe load), to build several networks from one read of the file.

    Raises:
        MissingAssetError, UnsafePickleError, AssetFormatError (naming the file).
    """
    return load_torch_checkpoint(path, DECA_SPEC)


def load_deca_encoder(path: str | os.PathLike | None, contents: Any = None) -> DecaEncoder:
    """Build :class:`DecaEncoder` (DECA's 236-d layout) from ``deca_model.tar['E_flame']``.

    ``contents``: the file as already read by :func:`read_deca` (``path`` then only names it in errors).

    Raises:
        MissingAssetError, UnsafePickleError, AssetFormatError, CheckpointKeyError (naming file and keys).
    """
    obj = read_deca(path) if contents is None else contents
    source = f"{path}['E_flame']"
    with torch.device("meta"):  # weights come from the file; skip the random init
        encoder = DecaEncoder()
    clean = check_state_dict_keys(select_entry(obj, "E_flame", str(path)), encoder.state_dict(), source)
    encoder.load_state_dict(clean, strict=True, assign=True)
    return encoder.eval()


def load_deca_detail(path: str | os.PathLike | None,
                     contents: Any = None) -> Optional[tuple[DetailEncoder, DetailDecoder]]:
    """``(E_detail, D_detail)`` from ``deca_model.tar`` in eval mode, or None when both entries are absent/empty.

    ``contents``: the file as already read by :func:`read_deca` (``path`` then only names it in errors).

    Raises:
        MissingAssetError, UnsafePickleError, AssetFormatError, CheckpointKeyError (naming file, entry and keys),
        also when only one of the two entries is present.
    """
    obj = read_deca(path) if contents is None else contents
    present = {k: bool(obj.get(k)) if isinstance(obj, dict) else False for k in ("E_detail", "D_detail")}
    if not any(present.values()):
        return None
    nets: list[torch.nn.Module] = []
    for entry, build in (("E_detail", DetailEncoder), ("D_detail", DetailDecoder)):
        with torch.device("meta"):  # weights come from the file
            net = build()
        clean = check_state_dict_keys(select_entry(obj, entry, str(path)), net.state_dict(), f"{path}['{entry}']")
        net.load_state_dict(clean, strict=True, assign=True)
        nets.append(net.eval())
    return nets[0], nets[1]
