"""FLAME file readers/writers: official byte structure, round trips, refusal of malicious and broken files."""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from albedogan.assets.flame_assets import FlameAssetPaths, load_flame_assets
from albedogan.assets.flame_model import load_flame_model
from albedogan.assets.landmark_embedding import LandmarkEmbedding, load_landmark_embedding
from albedogan.assets.synthetic.writers import (
    write_flame_model,
    write_landmark_embedding,
    write_uv_mask,
    write_uv_template,
)
from albedogan.assets.uv_mask import load_uv_mask
from albedogan.assets.uv_template import load_uv_template
from albedogan.assets.locate import AssetFormatError, MissingAssetError
from albedogan.assets.safe_pickle import UnsafePickleError
from tests.helpers.flame_tiny import tiny_flame_model, tiny_landmark_embedding, tiny_uv_template

MODEL_FIELDS = ("v_template", "faces", "shapedirs", "posedirs", "J_regressor", "parents", "lbs_weights")
LMK_FIELDS = ("static_lmk_faces_idx", "static_lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords",
              "full_lmk_faces_idx", "full_lmk_bary_coords")
OFFICIAL_KEYS = {"f", "v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights", "J", "bs_style",
                 "bs_type"}


@pytest.fixture(scope="module")
def model():
    return tiny_flame_model()


@pytest.fixture(scope="module")
def emb(model):
    return tiny_landmark_embedding(model.faces.shape[0])


def pickle_globals(data: bytes) -> set[str]:
    return {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


class _Stub:
    """Test-only stand-in recording what a pickle built (an independent structural reader)."""

    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _StructureUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in {("chumpy.ch", "Ch"), ("scipy.sparse.csc", "csc_matrix")}:
            return _Stub
        if (module, name) == ("copy_reg", "_reconstructor"):
            return lambda cls, base, state: cls()
        return super().find_class(module, name)


# --------------------------------------------------------------------------- FLAME model


@pytest.mark.parametrize("chumpy", [True, False])
def test_flame_model_round_trip(tmp_path, model, chumpy):
    path = tmp_path / "generic_model.pkl"
    write_flame_model(path, model, chumpy=chumpy)
    loaded = load_flame_model(path)
    for name in MODEL_FIELDS:
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name
        assert getattr(loaded, name).dtype == (np.int64 if name in ("faces", "parents") else np.float64)
    assert loaded.parents.tolist() == [-1, 0, 1, 1, 1]
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules


def test_flame_pickle_has_the_official_python2_structure(tmp_path, model):
    write_flame_model(tmp_path / "a.pkl", model, chumpy=True)
    write_flame_model(tmp_path / "b.pkl", model, chumpy=False)
    raw_a, raw_b = (tmp_path / "a.pkl").read_bytes(), (tmp_path / "b.pkl").read_bytes()
    assert raw_a[:2] == b"\x80\x02" and raw_b[:2] == b"\x80\x02"  # protocol 2
    assert pickle_globals(raw_a) == {
        "chumpy.ch Ch", "copy_reg _reconstructor", "__builtin__ object", "__builtin__ set",
        "scipy.sparse.csc csc_matrix", "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
    }
    assert pickle_globals(raw_b) == {
        "scipy.sparse.csc csc_matrix", "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
    }
    ops = {op.name for op, _, _ in pickletools.genops(raw_a)}
    assert "BINUNICODE" not in ops and "SHORT_BINUNICODE" not in ops  # Python-2 str only
    content = _StructureUnpickler(io.BytesIO(raw_a), encoding="latin1").load()
    assert set(content) == OFFICIAL_KEYS
    assert int(content["kintree_table"][0, 0]) == 4294967295
    assert content["bs_style"] == "lbs" and content["bs_type"] == "lrotmin"
    ch_state = content["shapedirs"].state
    assert isinstance(ch_state["_dirty_vars"], set) and np.array_equal(ch_state["x"], model.shapedirs)
    csc = content["J_regressor"].state
    import scipy.sparse

    dense = scipy.sparse.csc_matrix((csc["data"], csc["indices"], csc["indptr"]), shape=csc["_shape"]).toarray()
    assert np.array_equal(dense, model.J_regressor)
    np.testing.assert_allclose(content["J"], model.J_regressor @ model.v_template)


def test_python3_resaved_variant_with_new_scipy_module_loads(tmp_path, model):
    """A re-saved copy written by Python 3 (numpy._core names, scipy.sparse._csc, plain arrays) loads too."""
    import scipy.sparse

    kintree = np.stack([model.parents, np.arange(5)]).astype(np.int64)
    kintree[0, 0] = 4294967295
    content = {"f": model.faces.astype(np.uint32), "v_template": model.v_template, "shapedirs": model.shapedirs,
               "posedirs": model.posedirs, "J_regressor": scipy.sparse.csc_matrix(model.J_regressor),
               "kintree_table": kintree, "weights": model.lbs_weights}
    raw = pickle.dumps(content, protocol=4)
    assert b"scipy.sparse._csc" in raw and b"numpy._core" in raw
    (tmp_path / "m.pkl").write_bytes(raw)
    loaded = load_flame_model(tmp_path / "m.pkl")
    for name in MODEL_FIELDS:
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name


MALICIOUS_KINDS = ("os.system", "builtins.eval", "subprocess")


@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_malicious_flame_pickle_is_refused_and_does_not_run(tmp_path, kind):
    marker = tmp_path / "pwned"
    if kind == "os.system":
        cmd = f"touch {marker}".encode()
        raw = b"\x80\x02cos\nsystem\nU" + bytes([len(cmd)]) + cmd + b"\x85R."
    elif kind == "builtins.eval":
        expr = f"__import__('os').system('touch {marker}')".encode()
        raw = b"\x80\x02c__builtin__\neval\nU" + bytes([len(expr)]) + expr + b"\x85R."
    else:
        arg = str(marker).encode()
        raw = b"\x80\x02csubprocess\ncheck_call\n](U\x05touchU" + bytes([len(arg)]) + arg + b"e\x85R."
    # hide the payload inside an otherwise plausible dict
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(b"\x80\x02}(U\x01f" + raw[2:-1] + b"u.")
    with pytest.raises(UnsafePickleError) as info:
        load_flame_model(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_truncated_and_garbage_flame_files(tmp_path, model):
    write_flame_model(tmp_path / "full.pkl", model)
    raw = (tmp_path / "full.pkl").read_bytes()
    for name, data in (("trunc.pkl", raw[: len(raw) // 2]), ("garbage.pkl", b"not a pickle at all")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises((UnsafePickleError, AssetFormatError)) as info:
            load_flame_model(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)


def test_wrong_keys_and_shapes_name_file_and_key(tmp_path, model):
    good = {"f": model.faces, "v_template": model.v_template, "shapedirs": model.shapedirs,
            "posedirs": model.posedirs, "J_regressor": model.J_regressor,
            "kintree_table": np.stack([[-1, 0, 1, 1, 1], np.arange(5)]), "weights": model.lbs_weights}
    missing = {k: v for k, v in good.items() if k != "shapedirs"}
    (tmp_path / "missing.pkl").write_bytes(pickle.dumps(missing, protocol=4))
    with pytest.raises(AssetFormatError, match=r"missing\.pkl.*shapedirs"):
        load_flame_model(tmp_path / "missing.pkl")
    bad = dict(good, posedirs=model.posedirs[:, :, :30])
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad, protocol=4))
    with pytest.raises(AssetFormatError, match=r"bad\.pkl.*posedirs.*\(200, 3, 36\)"):
        load_flame_model(tmp_path / "bad.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(AssetFormatError, match=r"list\.pkl"):
        load_flame_model(tmp_path / "list.pkl")


# --------------------------------------------------------------------------- landmark embedding


def test_landmark_embedding_round_trip_and_deca_layout(tmp_path, emb):
    path = tmp_path / "landmark_embedding.npy"
    write_landmark_embedding(path, emb)
    loaded = load_landmark_embedding(path)
    for name in LMK_FIELDS:
        assert np.array_equal(getattr(loaded, name), getattr(emb, name)), name
    # independent reader: numpy itself (safe here: we wrote the file)
    content = np.load(path, allow_pickle=True, encoding="latin1").item()
    assert set(content) == set(LMK_FIELDS)
    assert isinstance(content["dynamic_lmk_faces_idx"], torch.Tensor)
    assert isinstance(content["dynamic_lmk_bary_coords"], torch.Tensor)
    assert content["full_lmk_faces_idx"].shape == (1, 68) and content["full_lmk_bary_coords"].dtype == np.float32
    payload = path.read_bytes()
    payload = payload[payload.index(b"\n") + 1 :]
    assert {"torch.storage _load_from_bytes", "torch._utils _rebuild_tensor_v2"} <= pickle_globals(payload)


def _npy_with_payload(payload: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": ()})
    return out.getvalue() + payload


def test_malicious_landmark_files_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    evil = b"cos\nsystem\nU" + bytes([len(cmd)]) + cmd + b"\x85R"
    path = tmp_path / "landmark_embedding.npy"
    path.write_bytes(_npy_with_payload(b"\x80\x02" + evil + b"."))
    with pytest.raises(UnsafePickleError, match="landmark_embedding.npy"):
        load_landmark_embedding(path)
    # an evil pickle hidden in a torch storage blob: torch.load(weights_only=True) must refuse it
    blob = b"\x80\x02" + evil + b"."
    wrapped = b"\x80\x03ctorch.storage\n_load_from_bytes\nB" + struct.pack("<I", len(blob)) + blob + b"\x85R."
    path.write_bytes(_npy_with_payload(wrapped))
    with pytest.raises(UnsafePickleError, match="landmark_embedding.npy"):
        load_landmark_embedding(path)
    assert not marker.exists()


def test_broken_landmark_files(tmp_path, emb):
    path = tmp_path / "lmk.npy"
    write_landmark_embedding(path, emb)
    raw = path.read_bytes()
    (tmp_path / "trunc.npy").write_bytes(raw[: len(raw) - 200])
    with pytest.raises(UnsafePickleError, match="trunc.npy"):
        load_landmark_embedding(tmp_path / "trunc.npy")
    (tmp_path / "head.npy").write_bytes(raw[:12])
    with pytest.raises(AssetFormatError, match="head.npy"):
        load_landmark_embedding(tmp_path / "head.npy")
    np.save(tmp_path / "numeric.npy", np.zeros(3))
    with pytest.raises(AssetFormatError, match="numeric.npy.*descr"):
        load_landmark_embedding(tmp_path / "numeric.npy")
    holder = np.empty((), dtype=object)
    holder[()] = {"static_lmk_faces_idx": np.zeros(51, dtype=np.int64)}
    np.save(tmp_path / "keys.npy", holder, allow_pickle=True)
    with pytest.raises(AssetFormatError, match="keys.npy.*dynamic_lmk_faces_idx"):
        load_landmark_embedding(tmp_path / "keys.npy")


def test_landmark_embedding_validates_shapes(emb):
    with pytest.raises(AssetFormatError, match="dynamic_lmk_faces_idx"):
        LandmarkEmbedding(emb.static_lmk_faces_idx, emb.static_lmk_bary_coords, emb.dynamic_lmk_faces_idx[:78],
                          emb.dynamic_lmk_bary_coords, emb.full_lmk_faces_idx, emb.full_lmk_bary_coords)


# --------------------------------------------------------------------------- UV template and masks


def test_uv_template_round_trip_and_mica_file(tmp_path, model):
    uv = tiny_uv_template(model)
    write_uv_template(tmp_path / "head_template.obj", uv, model.v_template, model.faces)
    loaded = load_uv_template(tmp_path / "head_template.obj")
    np.testing.assert_allclose(loaded.verts_uvs, uv.verts_uvs, atol=1e-7)
    assert np.array_equal(loaded.faces_uvs, uv.faces_uvs) and loaded.faces_uvs.dtype == np.int64
    # v/vt/vn faces are accepted too
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\nf 1/3/1 2/2/1 3/1/1\n"
    (tmp_path / "vn.obj").write_text(text)
    assert load_uv_template(tmp_path / "vn.obj").faces_uvs.tolist() == [[2, 1, 0]]
    (tmp_path / "mica.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(AssetFormatError, match=r"mica\.obj.*DECA"):
        load_uv_template(tmp_path / "mica.obj")
    (tmp_path / "bad.obj").write_text("vt 0 x\n")
    with pytest.raises(AssetFormatError, match=r"bad\.obj:1"):
        load_uv_template(tmp_path / "bad.obj")


def test_uv_mask_round_trip_and_rgba_channel0(tmp_path):
    import imageio.v3 as iio

    mask = np.zeros((16, 16))
    mask[4:12, 2:14] = 1.0
    mask[0, 0] = 0.5
    write_uv_mask(tmp_path / "m.png", mask)
    loaded = load_uv_mask(tmp_path / "m.png")
    assert loaded.dtype == np.float32 and loaded.shape == (16, 16)
    np.testing.assert_allclose(loaded, np.round(mask * 255) / 255, atol=1e-7)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = 7  # only channel 0 counts
    iio.imwrite(tmp_path / "o.png", rgba)
    assert np.all(load_uv_mask(tmp_path / "o.png") == 1.0)
    (tmp_path / "t.png").write_bytes((tmp_path / "m.png").read_bytes()[:30])
    with pytest.raises(AssetFormatError, match=r"t\.png"):
        load_uv_mask(tmp_path / "t.png")


# --------------------------------------------------------------------------- everything together


def _write_all(root: Path, model, emb) -> FlameAssetPaths:
    paths = FlameAssetPaths(root / "generic_model.pkl", root / "landmark_embedding.npy", root / "head_template.obj",
                            root / "uv_face_mask.png", root / "uv_face_eye_mask.png")
    write_flame_model(paths.model, model)
    write_landmark_embedding(paths.landmark_embedding, emb)
    write_uv_template(paths.uv_template, tiny_uv_template(model), model.v_template, model.faces)
    write_uv_mask(paths.uv_face_mask, np.ones((8, 8)))
    write_uv_mask(paths.uv_face_eye_mask, np.ones((8, 8)))
    return paths


def test_load_flame_assets(tmp_path, model, emb):
    assets = load_flame_assets(_write_all(tmp_path, model, emb))
    assert np.array_equal(assets.model.v_template, model.v_template)
    assert np.array_equal(assets.landmarks.dynamic_lmk_faces_idx, emb.dynamic_lmk_faces_idx)
    assert assets.uv.faces_uvs.shape == model.faces.shape and assets.face_mask.shape == (8, 8)


def test_missing_assets_listed_in_one_error(tmp_path):
    paths = FlameAssetPaths(*(tmp_path / n for n in ("a.pkl", "b.npy", "c.obj", "d.png", "e.png")))
    with pytest.raises(MissingAssetError) as info:
        load_flame_assets(paths)
    msg = str(info.value)
    for name in ("a.pkl", "b.npy", "c.obj", "d.png", "e.png"):
        assert name in msg
    for key in ("flame.model_path", "flame.landmark_embedding_path", "flame.uv_template_path",
                "flame.uv_face_mask_path", "flame.uv_face_eye_mask_path"):
        assert key in msg
    assert "https://flame.is.tue.mpg.de" in msg and "DECA" in msg
    with pytest.raises(MissingAssetError, match="flame.model_path"):
        load_flame_model(tmp_path / "nope.pkl")


def test_mismatched_assets_are_reported(tmp_path, model, emb):
    paths = _write_all(tmp_path, model, emb)
    other = tiny_flame_model(rows=8, cols=20)
    write_uv_template(paths.uv_template, tiny_uv_template(other), other.v_template, other.faces)
    with pytest.raises(AssetFormatError, match="UV faces"):
        load_flame_assets(paths)
