"""Fuzz targets: every file loader of albedogan, a builder of one small VALID file for it, and its clear errors.

A target's ``load(path)`` must either succeed or raise one of :data:`CLEAR_ERRORS` whose message names the file.
Builders use the project's own writers / test helpers, so the valid file is exactly what users feed the loader.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.datamodules.images import ImageLoadError

CLEAR_ERRORS: tuple[type[BaseException], ...] = (AssetFormatError, UnsafePickleError, MissingAssetError, ImageLoadError)
"""The project's error types a loader may raise for bad bytes (subclasses such as CheckpointKeyError included)."""


@dataclass(frozen=True)
class Target:
    """One loader under fuzz.

    Attributes:
        name: id used in test names.
        suffix: file extension the loader expects (``.pkl``, ``.npy``, ...).
        build: writes one valid file at the given path.
        load: the loader call.
        examples: hypothesis examples per strategy (heavy loaders build ResNets, so they get few).
    """

    name: str
    suffix: str
    build: Callable[[Path], None]
    load: Callable[[Path], Any]
    examples: int = 20


# ---------------------------------------------------------------- builders


def _build_flame(path: Path) -> None:
    from albedogan.assets.flame_files import write_flame_model
    from tests.helpers.flame_tiny import tiny_flame_model

    write_flame_model(path, tiny_flame_model(rows=8, cols=14))


def _build_landmarks(path: Path) -> None:
    from albedogan.assets.flame_files import write_landmark_embedding
    from tests.helpers.flame_tiny import tiny_landmark_embedding

    write_landmark_embedding(path, tiny_landmark_embedding(n_faces=40))


def _build_obj(path: Path) -> None:
    from albedogan.assets.flame_files import write_uv_template
    from tests.helpers.flame_tiny import tiny_flame_model, tiny_uv_template

    model = tiny_flame_model(rows=8, cols=14)
    write_uv_template(path, tiny_uv_template(model), model.v_template, model.faces)


def _build_mask(path: Path) -> None:
    from albedogan.assets.flame_files import write_uv_mask

    mask = np.zeros((16, 16), dtype=np.float32)
    mask[4:12, 3:13] = 1.0
    write_uv_mask(path, mask)


def _tiny_stylegan():
    from tests.helpers.stylegan2_files import tiny_pair

    return tiny_pair(32, seed=0)


def _build_stylegan_pt(path: Path) -> None:
    from tests.helpers.stylegan2_files import write_training_checkpoint

    G, D = _tiny_stylegan()
    write_training_checkpoint(path, G, G, D)


def _build_stylegan_pkl(path: Path) -> None:
    from tests.helpers.stylegan2_files import write_snapshot

    G, D = _tiny_stylegan()
    write_snapshot(path, G, G, D)


def _compact(module_fn: Callable[[], torch.nn.Module], seed: int) -> dict[str, torch.Tensor]:
    from tests.helpers.compact_state import compact_random_state

    with torch.device("meta"):
        template = module_fn().state_dict()
    return compact_random_state(template, seed=seed)


def _build_deca(path: Path) -> None:
    from albedogan.nets.encoder import DecaEncoder

    torch.save({"E_flame": _compact(DecaEncoder, 8), "E_detail": {"w": torch.zeros(2)}}, path)


def _arcface_state() -> dict[str, torch.Tensor]:
    from albedogan.nets.arcface import iresnet50

    return _compact(iresnet50, 3)


def _build_arcface(path: Path) -> None:
    torch.save(_arcface_state(), path)


def _build_mica(path: Path) -> None:
    from albedogan.nets.mica import MappingNetwork

    torch.manual_seed(5)
    reg = {f"regressor.{k}": v.clone() for k, v in MappingNetwork().state_dict().items()}
    torch.save({"arcface": _arcface_state(), "flameModel": reg}, path)


def _build_ckpt(path: Path) -> None:
    """A Lightning-style checkpoint of a tiny albedo generator (what `train.py` writes, reduced)."""
    from tests.helpers.inference_world import G_KWARGS, tiny_generator

    state = {f"G_ema.module.{k}": v for k, v in tiny_generator(0).state_dict().items()}
    hparams = {"albedo_generator_kwargs": dict(G_KWARGS)}
    torch.save({"epoch": 0, "global_step": 3, "state_dict": state, "hyper_parameters": hparams}, path)


def _build_safetensors(path: Path) -> None:
    from tests.helpers.inference_world import write_tiny_checkpoint

    write_tiny_checkpoint(path)


def _build_png(path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(path)


def _build_jpg(path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(path, quality=90)


# ---------------------------------------------------------------- loaders


def _load_flame(path: Path) -> Any:
    from albedogan.assets.flame_files import load_flame_model

    return load_flame_model(path)


def _load_landmarks(path: Path) -> Any:
    from albedogan.assets.flame_files import load_landmark_embedding

    return load_landmark_embedding(path)


def _load_obj(path: Path) -> Any:
    from albedogan.assets.flame_files import load_uv_template

    return load_uv_template(path)


def _load_mask(path: Path) -> Any:
    from albedogan.assets.flame_files import load_uv_mask

    return load_uv_mask(path)


def _load_stylegan(path: Path) -> Any:
    from albedogan.assets.stylegan2 import load_stylegan2

    return load_stylegan2(path)


def _load_deca(path: Path) -> Any:
    from albedogan.assets.convert.deca import load_deca_encoder

    return load_deca_encoder(path)


def _load_mica(path: Path) -> Any:
    from albedogan.assets.convert.mica import load_mica

    return load_mica(path)


def _load_arcface(path: Path) -> Any:
    from albedogan.assets.convert.arcface import load_arcface

    return load_arcface(path)


def _load_weights(path: Path) -> Any:
    from albedogan.models.weights_file import load_inference_weights

    return load_inference_weights(path)


def _load_image(path: Path) -> Any:
    from albedogan.datamodules.images import load_image

    return load_image(path)


TARGETS: tuple[Target, ...] = (
    Target("flame_pkl", ".pkl", _build_flame, _load_flame, 25),
    Target("landmark_npy", ".npy", _build_landmarks, _load_landmarks, 25),
    Target("uv_obj", ".obj", _build_obj, _load_obj, 25),
    Target("uv_mask_png", ".png", _build_mask, _load_mask, 20),
    Target("stylegan2_pt", ".pt", _build_stylegan_pt, _load_stylegan, 15),
    Target("stylegan2_pkl", ".pkl", _build_stylegan_pkl, _load_stylegan, 15),
    Target("deca_tar", ".tar", _build_deca, _load_deca, 8),
    Target("mica_tar", ".tar", _build_mica, _load_mica, 6),
    Target("arcface_pth", ".pth", _build_arcface, _load_arcface, 8),
    Target("lightning_ckpt", ".ckpt", _build_ckpt, _load_weights, 15),
    Target("weights_safetensors", ".safetensors", _build_safetensors, _load_weights, 15),
    Target("image_png", ".png", _build_png, _load_image, 20),
    Target("image_jpg", ".jpg", _build_jpg, _load_image, 20),
)
TARGETS_BY_NAME = {t.name: t for t in TARGETS}


class MarkerPayload:
    """Pickles to ``open(marker, 'w')`` -- creates ``marker`` if any loader ever executes pickled code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_bytes(kind: str, marker: Path) -> bytes:
    """A file of the given container kind whose payload would create ``marker`` when unpickled unsafely.

    kinds: ``"pickle"`` (raw protocol-2 pickle, as FLAME/NVIDIA files), ``"torch"`` (torch.save zip, as .pt/.tar/
    .pth/.ckpt), ``"npy"`` (an object-array .npy, as the landmark embedding).
    """
    payload = {"state_dict": {"x": MarkerPayload(str(marker))}, "E_flame": MarkerPayload(str(marker))}
    if kind == "pickle":
        return pickle.dumps(payload, protocol=2)
    buf = io.BytesIO()
    if kind == "torch":
        torch.save(payload, buf, pickle_module=pickle)
    elif kind == "npy":
        arr = np.empty((), dtype=object)
        arr[()] = payload
        np.save(buf, arr, allow_pickle=True)
    else:
        raise ValueError(kind)
    return buf.getvalue()
