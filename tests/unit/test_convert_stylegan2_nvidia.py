"""NVIDIA snapshot .pkl reading: exact-format files built without dnnlib/torch_utils, equivalence, safety."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import pickletools

import pytest
import torch

from albedogan.assets.convert import stylegan2_nvidia as nv
from albedogan.assets.locate import AssetFormatError
from albedogan.assets.safe_pickle import UnsafePickleError
from albedogan.assets.stylegan2 import detect_stylegan2_format, load_stylegan2, load_stylegan2_discriminator
from tests.helpers.stylegan2_files import (
    MODULE_SRC,
    Ref,
    SnapshotPickler,
    tiny_pair,
    write_snapshot,
    write_training_checkpoint,
)


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
    SnapshotPickler(buf).dump({"G_ema": G, "D": D, "extra": payload()})
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        load_stylegan2(path)
    assert not (tmp_path / "PWNED_NV").exists()


def test_unsafe_torch_blob_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blob = io.BytesIO()
    torch.save({"x": _Evil(os.system, "touch PWNED_BLOB")}, blob, pickle_module=pickle)
    buf = io.BytesIO()
    p = SnapshotPickler(buf)
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
        return (Ref("torch.storage", "_load_from_bytes"), (self.blob,))


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
