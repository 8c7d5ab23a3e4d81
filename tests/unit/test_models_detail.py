"""DECA detail: official key tables and BatchNorm eps, the decoder against DECA's Generator written out with
functional ops, ``displacement2normal`` against the official formula, the dense detail mesh, loading from
``deca_model.tar`` and the estimator's displacement (eval mode only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from albedogan.assets.convert.deca import load_deca_detail
from albedogan.assets.convert.torch_checkpoint import CheckpointKeyError
from albedogan.flame.head import HeadModel
from albedogan.models.detail import DecaDetail, dense_grid_faces
from albedogan.nets.deca_detail import DetailDecoder, DetailEncoder
from tests.helpers.compact_state import compact_random_state
from tests.helpers.fullsize_assets import sane_random_

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
D_DETAIL_KEYS = (["l1.0.weight", "l1.0.bias"]
                 + [f"conv_blocks.{i}.{k}" for i in (0, 3, 7, 11, 15, 19) for k in BN]
                 + [f"conv_blocks.{i}.{k}" for i in (2, 6, 10, 14, 18, 21) for k in ("weight", "bias")])


def _random_decoder(seed: int = 0) -> DetailDecoder:
    dec = sane_random_(DetailDecoder(), seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial statistics and affine terms, as trained weights have
        for m in dec.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.2, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
    return dec.eval()


def test_key_table_and_batchnorm_eps():
    dec = DetailDecoder()
    assert sorted(dec.state_dict()) == sorted(D_DETAIL_KEYS)
    assert dec.state_dict()["l1.0.weight"].shape == (128 * 8 * 8, 181)
    eps = {name: m.eps for name, m in dec.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert eps == {"conv_blocks.0": 1e-5, **{f"conv_blocks.{i}": 0.8 for i in (3, 7, 11, 15, 19)}}
    enc = DetailEncoder().state_dict()
    assert enc["layers.2.weight"].shape == (128, 1024) and "encoder.fc.weight" not in enc
    assert enc["encoder.conv1.weight"].shape == (64, 3, 7, 7)


def test_decoder_matches_deca_generator_formula():
    dec = _random_decoder(1)
    sd = dec.state_dict()
    latent = torch.randn(2, 181)

    def bn(x, i, eps):
        return F.batch_norm(x, sd[f"conv_blocks.{i}.running_mean"], sd[f"conv_blocks.{i}.running_var"],
                            sd[f"conv_blocks.{i}.weight"], sd[f"conv_blocks.{i}.bias"], False, 0.0, eps)

    x = F.linear(latent, sd["l1.0.weight"], sd["l1.0.bias"]).view(2, 128, 8, 8)
    x = bn(x, 0, 1e-5)
    for conv, norm in ((2, 3), (6, 7), (10, 11), (14, 15), (18, 19)):
        x = F.interpolate(x, scale_factor=2, mode="bilinear")
        x = F.conv2d(x, sd[f"conv_blocks.{conv}.weight"], sd[f"conv_blocks.{conv}.bias"], padding=1)
        x = F.leaky_relu(bn(x, norm, 0.8), 0.2)
    expected = torch.tanh(F.conv2d(x, sd["conv_blocks.21.weight"], sd["conv_blocks.21.bias"], padding=1)) * 0.01
    with torch.no_grad():
        out = dec(latent)
    assert out.shape == (2, 1, 256, 256)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    assert out.abs().max() <= 0.01


def _deca_triangles(h: int, w: int, margin_x: int = 2, margin_y: int = 5) -> np.ndarray:
    """DECA's ``generate_triangles`` as published (python loops)."""
    tris = []
    for x in range(margin_x, w - 1 - margin_x):
        for y in range(margin_y, h - 1 - margin_y):
            tris.append([y * w + x, y * w + x + 1, (y + 1) * w + x])
            tris.append([y * w + x + 1, (y + 1) * w + x + 1, (y + 1) * w + x])
    return np.array(tris)[:, [0, 2, 1]]


def test_dense_grid_faces_match_deca():
    np.testing.assert_array_equal(dense_grid_faces(20, 24).numpy(), _deca_triangles(20, 24))


def _deca_vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """DECA's ``util.vertex_normals``: per vertex, the sum of the three corner cross products, normalised."""
    n, v = vertices.shape[:2]
    tri = vertices[:, faces]  # (N, F, 3, 3)
    out = torch.zeros(n, v, 3, dtype=vertices.dtype)
    for corner, (a, b) in enumerate(((1, 2), (2, 0), (0, 1))):
        # DECA: normal at corner i = cross(v[next] - v[i], v[prev] - v[i]) written as cross(v2 - v1, v0 - v1) etc.
        prev, nxt = tri[:, :, (corner - 1) % 3], tri[:, :, (corner + 1) % 3]
        cross = torch.cross(prev - tri[:, :, corner], nxt - tri[:, :, corner], dim=-1)
        out.index_add_(1, faces[:, corner], -cross)
    return F.normalize(out, dim=-1, eps=1e-6)


@pytest.fixture(scope="module")
def detail(synthetic_data_dir):
    head = HeadModel.synthetic(synthetic_data_dir, n_shape=20, n_exp=10)
    return head, DecaDetail(_compact_encoder(2), _random_decoder(3), head)


def _compact_encoder(seed: int) -> DetailEncoder:
    with torch.device("meta"):
        enc = DetailEncoder()
    enc.load_state_dict(compact_random_state(enc.state_dict(), seed=seed), assign=True)
    return enc.eval()


def test_displacement_to_normals_follows_deca(detail):
    head, det = detail
    verts = head(head.zero_params(1)).vertices
    z = torch.randn(1, 1, 256, 256) * 0.002
    mask = F.interpolate(head.uv_face_eye_mask, size=(256, 256))  # nearest, DECA's default
    uv_verts = det.uv_space.attribute_map(verts)
    uv_normals = det.uv_space.attribute_map(_deca_vertex_normals(verts, head.faces))
    dense = (uv_verts + z * mask * uv_normals).permute(0, 2, 3, 1).reshape(1, -1, 3)
    tri = torch.as_tensor(_deca_triangles(256, 256))
    normals = _deca_vertex_normals(dense, tri).reshape(1, 256, 256, 3).permute(0, 3, 1, 2)
    expected = normals * mask + uv_normals * (1 - mask)
    got = det.detail_normals(verts, z)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    inside = (mask[0, 0] > 0) & (det.uv_space.coverage[0, 0] > 0)
    assert inside.sum() > 1000 and not torch.allclose(got[..., inside], uv_normals[..., inside], atol=1e-3)

    points, faces, texels = det.dense_mesh(verts, z)
    assert points.shape[0] == int(inside.sum()) and faces.max() < points.shape[0] and faces.shape[0] > points.shape[0]
    flat = dense[0]
    torch.testing.assert_close(points, flat[texels])


def test_load_detail_from_tar(tmp_path):
    with torch.device("meta"):
        template = DetailEncoder().state_dict()
    enc, dec = compact_random_state(template, seed=4), _random_decoder(5)  # a few-MB file in the official layout
    path = tmp_path / "deca_model.tar"
    torch.save({"E_flame": {}, "E_detail": enc, "D_detail": dec.state_dict()}, path)
    e2, d2 = load_deca_detail(path)
    for a, b in ((enc, e2.state_dict()), (dec.state_dict(), d2.state_dict())):
        for k, v in a.items():
            assert torch.equal(v, b[k]), k
    assert not d2.training
    torch.save({"E_flame": {}, "E_detail": {}, "D_detail": {}}, path)
    assert load_deca_detail(path) is None
    broken = dict(dec.state_dict())
    del broken["conv_blocks.3.running_var"]
    torch.save({"E_flame": {}, "E_detail": enc, "D_detail": broken}, path)
    with pytest.raises(CheckpointKeyError, match="conv_blocks.3.running_var"):
        load_deca_detail(path)


def test_estimator_displacement_in_eval_only(detail, tmp_path, monkeypatch):
    import albedogan.assets.convert.deca as deca_convert
    from albedogan.models.estimator import build_deca_mica_estimator
    from albedogan.nets.encoder import DecaEncoder

    head, det = detail
    path = tmp_path / "deca_model.tar"
    with torch.device("meta"):
        e_flame = DecaEncoder().state_dict()
    torch.save({"E_flame": compact_random_state(e_flame, seed=6), "E_detail": compact_random_state(
        det.encoder.state_dict(), seed=2), "D_detail": det.decoder.state_dict()}, path)
    reads = []
    real_load = deca_convert.load_torch_checkpoint
    monkeypatch.setattr(deca_convert, "load_torch_checkpoint", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    est = build_deca_mica_estimator(path, None, n_shape=20, n_exp=10, trainable=["encoder"], head=head)
    assert est.detail is not None
    assert reads == [path]  # E_flame and the detail networks from one read of the file
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = est(images)
        crops = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
        code = est.encoder(crops)
        expected = est.detail.displacement(crops, code.expression, code.pose[:, 3:])
        torch.testing.assert_close(expected, det.displacement(crops, code.expression, code.pose[:, 3:]))
    assert out.displacement.shape == (1, 1, 256, 256)
    torch.testing.assert_close(out.displacement, expected)
    assert torch.all(out.displacement[det.mask.expand_as(out.displacement) == 0] == 0)
    est.train()
    assert est(images).displacement is None  # training never computes (or trains) the detail
    assert build_deca_mica_estimator(path, None, n_shape=20, n_exp=10, detail=False, head=head).detail is None
