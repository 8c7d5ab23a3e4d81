"""SFace torch port vs onnxruntime on real aligned faces; differentiability; loader strictness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from albedogan.assets.convert.sface import default_sface_onnx_path, load_sface, sface_state_dict_from_onnx
from albedogan.assets.locate import AssetFormatError
from albedogan.nets.sface import SFace
from tests.helpers.real_faces import real_faces, reference_similarity


@pytest.fixture(scope="module")
def sface() -> SFace:
    return load_sface()


@pytest.fixture(scope="module")
def ort_session():
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(default_sface_onnx_path()))
    # the file lists its original weight names as (unused) graph inputs; keep only the image input
    keep = [i for i in model.graph.input if i.name == "data"]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """(N, 112, 112, 3) uint8 RGB crops aligned with OpenCV (independent of albedogan's warp)."""
    import cv2
    from albedogan.datamodules.alignment import ARCFACE_TEMPLATE_112

    out = []
    for face in real_faces():
        tform = reference_similarity(face.landmarks.astype(np.float64), ARCFACE_TEMPLATE_112.numpy().astype(np.float64))
        out.append(cv2.warpAffine(face.image, tform, (112, 112), flags=cv2.INTER_LINEAR))
    return np.stack(out)


def test_matches_onnxruntime_on_real_faces(sface, ort_session, crops) -> None:
    assert len(crops) >= 6
    ref = np.concatenate([
        ort_session.run(None, {"data": crop.transpose(2, 0, 1)[None].astype(np.float32)})[0] for crop in crops
    ])  # the graph's input: RGB 0..255 (OpenCV feeds it with swapRB=true)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        ours = sface(x).numpy()
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3 * np.abs(ref).max())


def test_gradients_wrt_input(sface, crops) -> None:
    x = (torch.from_numpy(crops[:2]).permute(0, 3, 1, 2).float() / 255.0).requires_grad_(True)
    emb = torch.nn.functional.normalize(sface(x), dim=-1)
    (emb[0] * emb[1]).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def test_structure_and_dequantisation(sface) -> None:
    sd = sface.state_dict()
    assert sd["stem.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["blocks.11.dw.conv.weight"].shape == (512, 1, 3, 3) and sface.blocks[11].dw.conv.stride == (2, 2)
    assert sd["pre_fc1.weight"].shape == (128, 1024 * 7 * 7)
    assert float(sface.input_mean) == 127.5 and float(sface.input_scale) == 0.0078125
    # dequantised int8 weights take at most 256 distinct values per 64-wide block
    assert torch.unique(sd["blocks.12.pw.conv.weight"][0, :64]).numel() <= 256
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    state = sface_state_dict_from_onnx()
    state["pre_fc1.weight"].zero_()  # a copy: the cache is not affected
    assert sface_state_dict_from_onnx()["pre_fc1.weight"].abs().sum() > 0


def test_not_an_onnx_file(tmp_path) -> None:
    bad = tmp_path / "sface.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(AssetFormatError, match="sface.onnx"):
        load_sface(bad)
