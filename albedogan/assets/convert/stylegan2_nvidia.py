"""Safe reader for NVIDIA StyleGAN2 network pickles (stylegan2-ada-pytorch / stylegan3 ``.pkl``).

An NVIDIA ``.pkl`` is a pickle of ``{training_set_kwargs, G, D, G_ema, augment_pipe}``. Each network and every
sub-module is a ``torch_utils.persistence`` object, pickled as ``_reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}``; NVIDIA's own loader *executes* ``module_src``. Tensors are
``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` over ``torch.storage._load_from_bytes(blob)``, itself an
unsafe ``torch.load``.

Here the file goes through :class:`albedogan.assets.safe_pickle.RestrictedUnpickler` with stand-ins:

* ``_reconstruct_persistent_obj`` -> :class:`PersistentRecord` (meta recorded, ``module_src`` kept as text and never
  executed);
* ``dnnlib.util.EasyDict`` -> :class:`EasyDictStandIn` (a plain ``dict`` subclass);
* ``_load_from_bytes`` -> :func:`albedogan.assets.safe_pickle.load_torch_bytes` (``weights_only=True``);
* tensor/parameter rebuilders -> small checked functions; numpy scalars through ``NUMPY_GLOBALS``.

Anything else (``os.system``, ``builtins.exec``, a persistent class from another module...) raises
:class:`~albedogan.assets.safe_pickle.UnsafePickleError` before it can run. The recorded ``state`` dicts are walked
(``_parameters``, ``_buffers``, ``_modules``) into a flat state dict, the native network is built from the recorded
constructor kwargs (:data:`G_KWARG_TABLE`, :data:`D_KWARG_TABLE`) and loaded with ``strict=True``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from albedogan.assets.convert.torch_checkpoint import load_state_dict_strict
from albedogan.assets.locate import AssetFormatError
from albedogan.assets.safe_pickle import (
    CONTAINER_GLOBALS,
    NUMPY_GLOBALS,
    UnsafePickleError,
    load_torch_bytes,
    restricted_loads,
)
from albedogan.nets.stylegan2 import Discriminator, Generator
from albedogan.utils.logging import get_logger

__all__ = [
    "EasyDictStandIn",
    "PersistentRecord",
    "NVIDIA_NETS",
    "NVIDIA_PKL_GLOBALS",
    "G_KWARG_TABLE",
    "D_KWARG_TABLE",
    "read_nvidia_pkl",
    "record_state_dict",
    "generator_from_record",
    "discriminator_from_record",
    "load_nvidia",
]

_log = get_logger(__name__)

NVIDIA_NETS = ("G_ema", "G", "D")
"""Networks an NVIDIA snapshot pickle holds."""


class EasyDictStandIn(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (no attribute access needed here)."""


@dataclass
class PersistentRecord:
    """What ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` received; nothing is executed.

    Attributes:
        type: ``meta["type"]`` (``"class"``).
        version: persistence format version.
        class_name: e.g. ``"training.networks.Generator"``.
        module_src: the pickled Python source (kept as text only, never executed).
        state: the object's ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...).
    """

    type: str
    version: int
    class_name: str
    module_src: str = field(repr=False)
    state: dict[str, Any] = field(repr=False)

    @property
    def short_name(self) -> str:
        """Class name without the module path, e.g. ``"Generator"``."""
        return self.class_name.rsplit(".", 1)[-1]


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError(f"unsupported persistent object meta: {type(meta).__name__} of type "
                                f"{meta.get('type') if isinstance(meta, dict) else '?'}")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent object {meta.get('class_name')!r} has no dict state")
    return PersistentRecord(type="class", version=int(meta.get("version", 0)), class_name=str(meta.get("class_name")),
                            module_src=str(meta.get("module_src", "")), state=state)


def _rebuild_tensor_v2(storage: Any, storage_offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor rebuilt over a {type(storage).__name__}, expected a torch storage")
    t = torch.empty(0, dtype=storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8)
    t = t.set_(storage if isinstance(storage, torch.UntypedStorage) else storage._untyped_storage,
               int(storage_offset), tuple(size), tuple(stride))
    return t.requires_grad_(bool(requires_grad)) if t.is_floating_point() else t


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = True, backward_hooks: Any = None,
                       state: Any = None) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter rebuilt from a {type(data).__name__}, expected a tensor")
    return torch.nn.Parameter(data.detach(), requires_grad=bool(requires_grad))


def _load_from_bytes(blob: bytes) -> Any:
    obj = load_torch_bytes(blob)
    if not isinstance(obj, (torch.TypedStorage, torch.UntypedStorage, torch.Tensor)):
        raise UnsafePickleError(f"embedded torch blob holds a {type(obj).__name__}, expected a storage")
    return obj


NVIDIA_PKL_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    **CONTAINER_GLOBALS,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDictStandIn,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
}
"""The complete allow-list of globals an NVIDIA StyleGAN2 snapshot may reference."""


def read_nvidia_pkl(path: str | os.PathLike) -> dict[str, Any]:
    """Safely unpickle an NVIDIA snapshot into plain dicts and :class:`PersistentRecord` objects.

    Returns:
        The top-level dict (``G``, ``D``, ``G_ema``, ``augment_pipe``, ``training_set_kwargs`` as present).

    Raises:
        UnsafePickleError: a global outside :data:`NVIDIA_PKL_GLOBALS`, or an embedded blob ``weights_only`` refuses.
        AssetFormatError: the pickle is safe but not a snapshot dict.
    """
    path = Path(path)
    data = restricted_loads(path.read_bytes(), NVIDIA_PKL_GLOBALS, source=str(path), encoding="latin1")
    if not isinstance(data, dict):
        raise AssetFormatError(f"{path}: expected a dict of networks (G, D, G_ema), got {type(data).__name__}")
    return data


def record_state_dict(record: PersistentRecord, prefix: str = "") -> "OrderedDict[str, torch.Tensor]":
    """Flatten a recorded module tree into a ``state_dict`` (parameters and persistent buffers, NVIDIA names)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    st = record.state
    non_persistent = set(st.get("_non_persistent_buffers_set", ()) or ())
    for name, p in (st.get("_parameters") or {}).items():
        if p is not None:
            out[prefix + name] = p.detach()
    for name, b in (st.get("_buffers") or {}).items():
        if b is not None and name not in non_persistent:
            out[prefix + name] = b
    for name, child in (st.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise AssetFormatError(f"sub-module {prefix + name} is a {type(child).__name__}, expected a persistent module")
        out.update(record_state_dict(child, prefix + name + "."))
    return out


# NVIDIA constructor kwarg -> native kwarg (None = accepted but irrelevant for inference)
G_KWARG_TABLE: dict[str, str | None] = {
    "z_dim": "z_dim", "w_dim": "w_dim", "img_resolution": "img_resolution", "img_channels": "img_channels",
    "channel_base": "channel_base", "channel_max": "channel_max", "num_fp16_res": "num_fp16_res",
    "conv_clamp": "conv_clamp",
    "mapping.num_layers": "mapping_layers", "mapping.lr_multiplier": "mapping_lr_multiplier",
    "mapping.w_avg_beta": "w_avg_beta",
    "mapping.freeze_layers": None, "mapping.freeze_embed": None, "mapping.embed_features": None,
    "fp16_channels_last": None, "fused_modconv_default": None, "channels_last": None,
}
"""Recorded Generator kwargs (``mapping.`` = inside ``mapping_kwargs``) and their native names."""

D_KWARG_TABLE: dict[str, str | None] = {
    "img_resolution": "img_resolution", "img_channels": "img_channels", "channel_base": "channel_base",
    "channel_max": "channel_max", "num_fp16_res": "num_fp16_res", "conv_clamp": "conv_clamp",
    "epilogue.mbstd_group_size": "mbstd_group_size", "epilogue.mbstd_num_channels": "mbstd_num_channels",
    "cmap_dim": None, "block.freeze_layers": None, "block.fp16_channels_last": None,
}
"""Recorded Discriminator kwargs (``block.`` / ``epilogue.`` = inside ``block_kwargs`` / ``epilogue_kwargs``)."""

# kwargs whose only supported value is listed (anything else is a different architecture)
_REQUIRED_VALUES: dict[str, tuple[Any, ...]] = {
    "c_dim": (0,),
    "architecture": ("skip", "resnet"),
    "activation": ("lrelu",),
    "mapping.activation": ("lrelu",),
    "block.activation": ("lrelu",),
    "epilogue.activation": ("lrelu",),
    "resample_filter": ([1, 3, 3, 1], (1, 3, 3, 1)),
    "block.resample_filter": ([1, 3, 3, 1], (1, 3, 3, 1)),
    "use_noise": (True,),
    "kernel_size": (3,),
}
_ARCH_HINT = "the weights do not match the architecture its constructor arguments describe"
_POSITIONAL = {"Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"),
               "Discriminator": ("c_dim", "img_resolution", "img_channels")}
_NESTED = {"mapping_kwargs": "mapping", "synthesis_kwargs": "", "block_kwargs": "block", "epilogue_kwargs": "epilogue"}


def _flatten_init_kwargs(record: PersistentRecord) -> dict[str, Any]:
    st = record.state
    kwargs = dict(st.get("_init_kwargs") or {})
    args = tuple(st.get("_init_args") or ())
    names = _POSITIONAL.get(record.short_name, ())
    if len(args) > len(names):
        raise AssetFormatError(f"{record.class_name}: {len(args)} positional constructor args are not understood")
    kwargs.update(zip(names, args))
    flat: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in _NESTED and isinstance(v, dict):
            pre = _NESTED[k]
            for kk, vv in v.items():
                flat[f"{pre}.{kk}" if pre else kk] = vv
        elif k == "class_name":
            continue
        else:
            flat[k] = v
    return flat


def _native_kwargs(record: PersistentRecord, table: Mapping[str, str | None], source: str) -> dict[str, Any]:
    flat = _flatten_init_kwargs(record)
    out: dict[str, Any] = {}
    unknown, unsupported = [], []
    for k, v in flat.items():
        if k == "mapping.layer_features":  # None means w_dim
            if v is not None and v != flat.get("w_dim"):
                unsupported.append(f"{k}={v!r} (supported: None or w_dim)")
        elif k in _REQUIRED_VALUES:
            ok = _REQUIRED_VALUES[k]
            if k == "architecture":
                ok = ("skip",) if record.short_name == "Generator" else ("resnet",)
            if (list(v) if isinstance(v, (list, tuple)) else v) not in [list(o) if isinstance(o, tuple) else o for o in ok]:
                unsupported.append(f"{k}={v!r} (supported: {ok[0]!r})")
        elif k in table:
            if table[k] is not None:
                out[table[k]] = v.item() if hasattr(v, "item") else v
        elif k.startswith("mapping.") and record.short_name == "Discriminator":
            continue  # label mapping of a conditional D; c_dim == 0 is enforced above
        else:
            unknown.append(k)
    if unknown or unsupported:
        raise AssetFormatError(
            f"{source}: {record.class_name} was built with constructor arguments albedogan does not support: "
            f"{unsupported + [f'{u} (unknown)' for u in unknown]}. Only unconditional StyleGAN2 (config E/F) "
            "networks can be loaded.")
    for key in ("z_dim", "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max"):
        if key in out:
            out[key] = int(out[key])
    if out.get("conv_clamp") is not None:
        out["conv_clamp"] = float(out["conv_clamp"])
    return out


def generator_from_record(record: PersistentRecord, source: str = "<pkl>") -> Generator:
    """Native :class:`Generator` from a recorded NVIDIA ``Generator`` (eval mode, frozen, CPU float32)."""
    if record.short_name != "Generator":
        raise AssetFormatError(f"{source}: expected a Generator, found {record.class_name}")
    synth = (record.state.get("_modules") or {}).get("synthesis")
    if not isinstance(synth, PersistentRecord) or synth.short_name != "SynthesisNetwork" or \
            "b4" not in (synth.state.get("_modules") or {}):
        raise AssetFormatError(f"{source}: not a StyleGAN2 generator (StyleGAN3 / other synthesis networks are not "
                               "supported); use a stylegan2(-ada) FFHQ snapshot")
    G = Generator(**_native_kwargs(record, G_KWARG_TABLE, source))
    load_state_dict_strict(G, record_state_dict(record), f"{source} (generator)", hint=_ARCH_HINT)
    return G.eval().requires_grad_(False)


def discriminator_from_record(record: PersistentRecord, source: str = "<pkl>") -> Discriminator:
    """Native :class:`Discriminator` from a recorded NVIDIA ``Discriminator`` (eval mode)."""
    if record.short_name != "Discriminator":
        raise AssetFormatError(f"{source}: expected a Discriminator, found {record.class_name}")
    D = Discriminator(**_native_kwargs(record, D_KWARG_TABLE, source))
    load_state_dict_strict(D, record_state_dict(record), f"{source} (discriminator)", hint=_ARCH_HINT)
    return D.eval()


def load_nvidia(path: str | os.PathLike, which: str = "G_ema") -> Generator | Discriminator:
    """Load ``G_ema``, ``G`` or ``D`` from an NVIDIA snapshot ``.pkl`` into the native classes.

    Args:
        path: the ``.pkl`` file.
        which: ``"G_ema"`` (default), ``"G"`` or ``"D"``.

    Returns:
        :class:`Generator` (eval, frozen) or :class:`Discriminator` (eval).
    """
    if which not in NVIDIA_NETS:
        raise ValueError(f"which must be one of {NVIDIA_NETS}, got {which!r}")
    data = read_nvidia_pkl(path)
    rec = data.get(which)
    if not isinstance(rec, PersistentRecord):
        have = [k for k in NVIDIA_NETS if isinstance(data.get(k), PersistentRecord)]
        raise AssetFormatError(f"{path}: snapshot has no network '{which}' (it has {have})")
    src = f"{path}[{which}]"
    return discriminator_from_record(rec, src) if which == "D" else generator_from_record(rec, src)
