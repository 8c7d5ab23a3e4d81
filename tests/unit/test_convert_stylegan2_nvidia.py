"""NVIDIA snapshot .pkl reading: exact-format files built without dnnlib/torch_utils, equivalence, safety."""

from __future__ import annotations

import io
import importlib.util
import os
import pickle
import pickletools
from collections import OrderedDict

import numpy as np
import pytest
import torch

from albedogan.assets.convert import stylegan2_nvidia as nv
from albedogan.assets.locate import AssetFormatError
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.assets.stylegan2 import detect_stylegan2_format, load_stylegan2, load_stylegan2_discriminator
from albedogan.nets import stylegan2 as sg
from tests.unit.test_convert_stylegan2_rosinality import tiny_pair, write_training_checkpoint

MODULE_SRC = "# networks.py source would be here; albedogan never executes it\n"


class _Ref:
    """A global reference written as STACK_GLOBAL without importing its module."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *a):  # pickle requires reduce functions to be callable
        raise RuntimeError("marker only")


PERSIST = _Ref("torch_utils.persistence", "_reconstruct_persistent_obj")
EASYDICT = _Ref("dnnlib.util", "EasyDict")


class _EasyDict(dict):
    pass


class _SnapshotPickler(pickle._Pickler):
    """Writes native modules as NVIDIA persistent objects, EasyDicts as dnnlib.util.EasyDict."""

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, numpy_module: str = "numpy._core", style: str = "ada") -> None:
        super().__init__(file, protocol=4)
        self.numpy_module = numpy_module
        self.style = style

    def save_ref(self, obj: _Ref) -> None:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    dispatch[_Ref] = save_ref

    def reducer_override(self, obj):
        if isinstance(obj, torch.nn.Module):
            return (PERSIST, (module_meta(obj, self.style),))
        if isinstance(obj, _EasyDict):
            return (EASYDICT, (), None, None, iter(obj.items()))
        if isinstance(obj, np.generic):
            return (_Ref(f"{self.numpy_module}.multiarray", "scalar"), (obj.dtype, obj.tobytes()))
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
    _SnapshotPickler(buf, numpy_module, style).dump(snap)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _globals(data: bytes) -> set[str]:
    """Every global a pickle references (GLOBAL and STACK_GLOBAL, following memoised strings), via pickletools."""
    out: set[str] = set()
    memo: list = []
    pushed: list = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            pushed.append(arg)
        elif op.name == "MEMOIZE":
            memo.append(pushed[-1] if pushed else None)
        elif op.name in ("BINGET", "LONG_BINGET"):
            pushed.append(memo[arg])
        elif op.name == "STACK_GLOBAL":
            out.add(f"{pushed[-2]}.{pushed[-1]}")
            pushed.append(None)
        elif op.name == "GLOBAL":
            out.add(arg.replace(" ", "."))
        else:
            pushed.append(None)
    return out


def test_builder_does_not_need_nvidia_packages_and_uses_official_globals(tmp_path) -> None:
    assert importlib.util.find_spec("dnnlib") is None and importlib.util.find_spec("torch_utils") is None
    G, D = tiny_pair(32)
    data = write_snapshot(tmp_path / "snap.pkl", G, G, D)
    names = _globals(data)
    assert {"torch_utils.persistence._reconstruct_persistent_obj", "dnnlib.util.EasyDict",
            "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch.storage._load_from_bytes",
            "numpy._core.multiarray.scalar", "numpy.dtype", "collections.OrderedDict"} <= names
    assert names <= {".".join(k) for k in nv.NVIDIA_PKL_GLOBALS}
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(data)  # the plain unpickler needs NVIDIA's code; ours does not


@pytest.mark.parametrize("numpy_module,style", [("numpy._core", "ada"), ("numpy.core", "sg3"), ("numpy.core", "legacy")])
def test_snapshot_round_trip_all_networks(tmp_path, numpy_module, style) -> None:
    G_ema, D = tiny_pair(32, seed=0)
    G_raw, _ = tiny_pair(32, seed=1)
    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, G_ema, G_raw, D, numpy_module, style)
    assert detect_stylegan2_format(path) == "nvidia"
    for which, ref in (("G_ema", G_ema), ("G", G_raw), ("D", D)):
        net = nv.load_nvidia(path, which)
        assert type(net) is type(ref) and net.init_kwargs == ref.init_kwargs
        for k, v in ref.state_dict().items():
            assert torch.equal(v, net.state_dict()[k]), (which, k)
    rec = nv.read_nvidia_pkl(path)["G_ema"]
    assert rec.module_src == MODULE_SRC and rec.short_name == "Generator"


def test_same_weights_through_both_formats_give_same_image(tmp_path) -> None:
    G, D = tiny_pair(32)
    write_snapshot(tmp_path / "ffhq.pkl", G, G, D)
    write_training_checkpoint(tmp_path / "ffhq.pt", G, G, D)
    a, b = load_stylegan2(tmp_path / "ffhq.pkl"), load_stylegan2(tmp_path / "ffhq.pt")
    z = torch.randn(3, 16)
    ia = a(z, truncation_psi=0.5, noise_mode="const")
    assert torch.allclose(ia, b(z, truncation_psi=0.5, noise_mode="const"), atol=1e-6)
    assert torch.allclose(ia, G(z, truncation_psi=0.5, noise_mode="const"), atol=1e-6)
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(load_stylegan2_discriminator(tmp_path / "ffhq.pkl")(x),
                          load_stylegan2_discriminator(tmp_path / "ffhq.pt")(x), atol=1e-6)


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


@pytest.mark.parametrize("payload", [
    lambda: _Evil(os.system, "touch PWNED_NV"),
    lambda: _Evil(exec, "open('PWNED_NV', 'w').close()"),
])
def test_malicious_globals_are_refused(tmp_path, monkeypatch, payload) -> None:
    monkeypatch.chdir(tmp_path)
    G, D = tiny_pair(32)
    path = tmp_path / "evil.pkl"
    buf = io.BytesIO()
    _SnapshotPickler(buf).dump({"G_ema": G, "D": D, "extra": payload()})
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        load_stylegan2(path)
    assert not (tmp_path / "PWNED_NV").exists()


def test_unsafe_torch_blob_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blob = io.BytesIO()
    torch.save({"x": _Evil(os.system, "touch PWNED_BLOB")}, blob, pickle_module=pickle)
    buf = io.BytesIO()
    p = _SnapshotPickler(buf)
    p.dump({"G_ema": _BlobCarrier(blob.getvalue())})
    path = tmp_path / "blob.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError):
        nv.read_nvidia_pkl(path)
    assert not (tmp_path / "PWNED_BLOB").exists()


class _BlobCarrier:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self):
        return (_Ref("torch.storage", "_load_from_bytes"), (self.blob,))


def test_unsupported_architecture_and_unknown_format(tmp_path) -> None:
    G, D = tiny_pair(32)
    path = tmp_path / "cond.pkl"
    write_snapshot(path, G, tiny_pair(32, seed=1)[0], D)
    data = nv.read_nvidia_pkl(path)
    data["G_ema"].state["_init_kwargs"]["c_dim"] = 10
    with pytest.raises(AssetFormatError, match="c_dim=10"):
        nv.generator_from_record(data["G_ema"], "cond.pkl")
    conv1 = data["G"].state["_modules"]["synthesis"].state["_modules"]["b8"].state["_modules"]["conv1"]
    del conv1.state["_parameters"]["weight"]
    with pytest.raises(AssetFormatError, match=r"synthesis\.b8\.conv1\.weight"):
        nv.generator_from_record(data["G"], "snap.pkl")
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"hello world")
    with pytest.raises(AssetFormatError, match="weights.bin"):
        load_stylegan2(junk)
    with pytest.raises(FileNotFoundError, match="teacher.checkpoint"):
        load_stylegan2(tmp_path / "missing.pkl")
