"""Builders of StyleGAN2 checkpoints in the exact official layouts, for tests: rosinality ``.pt`` training checkpoints
and NVIDIA stylegan2-ada / stylegan3 snapshot ``.pkl`` files (written without dnnlib / torch_utils importable)."""

from __future__ import annotations

import argparse
import io
import pickle
from collections import OrderedDict

import numpy as np
import torch

from albedogan.assets.convert import stylegan2_rosinality as ros
from albedogan.nets import stylegan2 as sg

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=32)


def tiny_pair(res: int = 32, seed: int = 0) -> tuple[sg.Generator, sg.Discriminator]:
    torch.manual_seed(seed)
    G = sg.Generator(img_resolution=res, **TINY)
    D = sg.Discriminator(img_resolution=res, channel_base=256, channel_max=32)
    with torch.no_grad():
        for name, p in list(G.named_parameters()) + list(D.named_parameters()):
            if name.endswith("noise_strength") or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
        G.mapping.w_avg.copy_(torch.randn(16))
    return G.eval(), D.eval()


def write_training_checkpoint(path, G_ema, G, D, with_latent_avg=True, prefix="") -> None:
    g_ema, avg = ros.generator_to_rosinality(G_ema)
    ckpt = {
        "g_ema": {prefix + k: v for k, v in g_ema.items()},
        "g": {prefix + k: v for k, v in ros.generator_to_rosinality(G)[0].items()},
        "d": {prefix + k: v for k, v in ros.discriminator_to_rosinality(D).items()},
        "g_optim": torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))]).state_dict(),
        "args": argparse.Namespace(size=32, channel_multiplier=2, batch=4, r1=10.0),
        "ada_aug_p": 0.0,
    }
    if with_latent_avg:
        ckpt["latent_avg"] = avg
    torch.save(ckpt, path)


MODULE_SRC = "# networks.py source would be here; albedogan never executes it\n"


class Ref:
    """A global reference written as STACK_GLOBAL without importing its module."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *a):  # pickle requires reduce functions to be callable
        raise RuntimeError("marker only")


PERSIST = Ref("torch_utils.persistence", "_reconstruct_persistent_obj")
EASYDICT = Ref("dnnlib.util", "EasyDict")


class _EasyDict(dict):
    pass


class SnapshotPickler(pickle._Pickler):
    """Writes native modules as NVIDIA persistent objects, EasyDicts as dnnlib.util.EasyDict."""

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, numpy_module: str = "numpy._core", style: str = "ada") -> None:
        super().__init__(file, protocol=4)
        self.numpy_module = numpy_module
        self.style = style

    def save_ref(self, obj: Ref) -> None:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    dispatch[Ref] = save_ref

    def reducer_override(self, obj):
        if isinstance(obj, torch.nn.Module):
            return (PERSIST, (module_meta(obj, self.style),))
        if isinstance(obj, _EasyDict):
            return (EASYDICT, (), None, None, iter(obj.items()))
        if isinstance(obj, np.generic):
            return (Ref(f"{self.numpy_module}.multiarray", "scalar"), (obj.dtype, obj.tobytes()))
        return NotImplemented


def _nvidia_kwargs(net: torch.nn.Module, style: str) -> dict:
    """Constructor kwargs as each NVIDIA code path records them: "ada" (train.py), "sg3" (flat synthesis kwargs),
    "legacy" (legacy.py conversion of the TF ffhq.pkl: every option spelled out)."""
    k = net.init_kwargs
    legacy = style == "legacy"
    if isinstance(net, sg.Generator):
        synth = _EasyDict(channel_base=k["channel_base"], channel_max=k["channel_max"],
                          num_fp16_res=k["num_fp16_res"], conv_clamp=k["conv_clamp"], architecture="skip")
        mapping = _EasyDict(num_layers=k["mapping_layers"], w_avg_beta=k["w_avg_beta"])
        if legacy:
            synth.update(resample_filter=[1, 3, 3, 1], use_noise=True, activation="lrelu")
            mapping.update(embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01)
        out = dict(z_dim=k["z_dim"], c_dim=0, w_dim=k["w_dim"], img_resolution=k["img_resolution"],
                   img_channels=k["img_channels"], mapping_kwargs=mapping)
        if style == "sg3":  # stylegan3 repo: synthesis kwargs flattened into the Generator's kwargs
            out.update(synth, fused_modconv_default="inference_only")
        else:
            out["synthesis_kwargs"] = synth
        return out
    block = _EasyDict(freeze_layers=0)
    epilogue = _EasyDict(mbstd_group_size=4)
    if legacy:
        block.update(activation="lrelu", resample_filter=[1, 3, 3, 1])
        epilogue.update(mbstd_num_channels=1, activation="lrelu")
    return dict(c_dim=0, img_resolution=k["img_resolution"], img_channels=k["img_channels"], architecture="resnet",
                channel_base=k["channel_base"], channel_max=k["channel_max"], num_fp16_res=k["num_fp16_res"],
                conv_clamp=k["conv_clamp"], block_kwargs=block, mapping_kwargs=_EasyDict(), epilogue_kwargs=epilogue)


def module_meta(m: torch.nn.Module, style: str) -> dict:
    """The meta dict NVIDIA's persistence writes: the module __dict__ as state."""
    state = {
        "training": m.training,
        "_parameters": OrderedDict(m._parameters),
        "_buffers": OrderedDict(m._buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(), "_forward_pre_hooks": OrderedDict(),
        "_state_dict_hooks": OrderedDict(), "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": OrderedDict(m._modules),
        "_init_args": (),
        "_init_kwargs": _nvidia_kwargs(m, style) if hasattr(m, "init_kwargs") else {},
    }
    for key in ("weight_gain", "bias_gain"):
        if hasattr(m, key):
            state[key] = np.float64(getattr(m, key))
    for key in ("resolution", "in_channels", "w_dim", "z_dim", "num_ws", "img_resolution"):
        if hasattr(m, key) and isinstance(getattr(m, key), int):
            state[key] = getattr(m, key)
    cls = type(m).__name__
    return dict(type="class", version=4, module_src=MODULE_SRC, class_name=f"training.networks.{cls}", state=state)


def write_snapshot(path, G_ema, G, D, numpy_module="numpy._core", style="ada") -> bytes:
    buf = io.BytesIO()
    snap = {"G": G, "D": D, "G_ema": G_ema, "augment_pipe": None,
            "training_set_kwargs": _EasyDict(path="ffhq.zip", resolution=G.img_resolution, use_labels=False)}
    SnapshotPickler(buf, numpy_module, style).dump(snap)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()
