"""Generator metrics (FID/KID, identity similarity, LPIPS) and report writers, against independent references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn

from albedogan.assets.locate import MissingAssetError
from albedogan.eval import generator_metrics as gm
from albedogan.eval.report import EvaluationReport, file_sha256, write_report


class PooledProjection(nn.Module):
    """Tiny deterministic extractor: 4x4 average pool -> fixed random projection to 12-D (float64)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(48, 12, generator=gen, dtype=torch.float64))
        self.num_features = 12

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(images.double(), 4).flatten(1)  # (N, 48)
        return pooled @ self.proj


def _images(n: int, seed: int, size: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=gen) * 0.6 + 0.2
    return (base + 0.15 * torch.rand(n, 3, size, size, generator=gen)).clamp(0, 1)


pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save:UserWarning")


@pytest.fixture(scope="module")
def sface_embedder():
    """The real SFace identity embedder (bundled ONNX weights), built once for this module."""
    from albedogan.assets.convert.identity import build_identity_embedder

    return build_identity_embedder("sface")


def _space() -> gm.FeatureSpace:
    return gm.FeatureSpace("toy", PooledProjection())


def _fid_reference(f1: np.ndarray, f2: np.ndarray) -> float:
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _kid_reference(f1: np.ndarray, f2: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3 on the full sets."""
    d = f1.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(f1, f1), k(f2, f2), k(f1, f2)
    m, n = len(f1), len(f2)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def _dist(real: torch.Tensor, fake: torch.Tensor, subset_size: int | None = None, subsets: int = 1) -> dict[str, float]:
    metric = gm.DistributionMetrics(_space(), kid_subsets=subsets, kid_subset_size=subset_size or len(real), batch_size=7)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute()


def test_fid_of_set_with_itself_is_zero_and_matches_reference() -> None:
    real = _images(40, 0)
    scores = _dist(real, real)
    assert set(scores) == {"FID_toy", "KID_toy_mean", "KID_toy_std"}
    assert abs(scores["FID_toy"]) < 1e-6
    fake = _images(40, 1)
    feats = PooledProjection()
    ref = _fid_reference(feats(real).numpy(), feats(fake).numpy())
    got = _dist(real, fake)["FID_toy"]
    assert got == pytest.approx(ref, rel=1e-4, abs=1e-8)


def test_fid_grows_with_distortion() -> None:
    real = _images(40, 0)
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(real.shape, generator=gen)
    fids = [_dist(real, (real + s * noise + 0.5 * s).clamp(0, 1))["FID_toy"] for s in (0.02, 0.1, 0.3)]
    assert fids[0] < fids[1] < fids[2], fids
    assert fids[0] > 0


def test_kid_matches_unbiased_reference_and_is_near_zero_for_same_distribution() -> None:
    real, same = _images(30, 0), _images(30, 1)
    shifted = (_images(30, 2) * 0.6).clamp(0, 1)
    feats = PooledProjection()
    got_same = _dist(real, same)["KID_toy_mean"]  # one subset of size n = a permutation of the full sets
    assert got_same == pytest.approx(_kid_reference(feats(real).numpy(), feats(same).numpy()), rel=1e-4, abs=1e-9)
    got_shift = _dist(real, shifted)["KID_toy_mean"]
    assert abs(got_same) < 0.05 * got_shift
    # unbiased: over independent same-distribution draws the estimate straddles 0 (a biased one is always > 0)
    values = [_dist(_images(12, 10 + i), _images(12, 50 + i))["KID_toy_mean"] for i in range(8)]
    assert min(values) < 0 < got_shift


def test_compute_rejects_too_few_images() -> None:
    metric = gm.DistributionMetrics(_space(), kid_subsets=2, kid_subset_size=10)
    metric.update(_images(4, 0), real=True)
    metric.update(_images(4, 1), real=False)
    with pytest.raises(ValueError, match="subset size 10"):
        metric.compute()
    metric.reset()
    metric.update(_images(1, 0), real=True)
    with pytest.raises(ValueError, match="1 real, 0 generated"):
        metric.compute()


def test_fallback_is_labelled_and_inception_never_downloaded(monkeypatch, sface_embedder) -> None:
    import albedogan.assets.convert.identity as identity

    calls = []
    monkeypatch.setattr(identity, "build_identity_embedder", lambda kind, path=None: calls.append(kind) or sface_embedder)
    monkeypatch.setattr(gm, "find_inception_weights", lambda path=None: None)
    with pytest.raises(MissingAssetError, match="InceptionV3"):
        gm.build_feature_space("inception")
    space = gm.build_feature_space("auto")
    assert space.label == "sface" and not space.is_inception and calls == ["sface"]
    assert space.extractor.num_features == 128
    metric = gm.DistributionMetrics(space, kid_subsets=2, kid_subset_size=3, batch_size=4)
    imgs = _images(4, 3, size=48)
    metric.update(imgs, real=True)
    metric.update(imgs, real=False)
    scores = metric.compute()
    assert set(scores) == {"FID_sface", "KID_sface_mean", "KID_sface_std"}
    assert not any("inception" in k.lower() for k in scores)
    assert abs(scores["FID_sface"]) < 1e-5


def test_find_inception_weights_needs_package_and_file(monkeypatch, tmp_path) -> None:
    weights = tmp_path / gm.INCEPTION_WEIGHTS_FILE
    weights.write_bytes(b"x")
    monkeypatch.setattr(gm.importlib.util, "find_spec", lambda name: None)
    assert gm.find_inception_weights(tmp_path) is None  # file present but torch-fidelity missing
    monkeypatch.setattr(gm.importlib.util, "find_spec", lambda name: object())
    assert gm.find_inception_weights(tmp_path) == weights
    assert gm.find_inception_weights(weights) == weights
    assert gm.find_inception_weights(tmp_path / "nowhere") is None


def test_identity_similarity_is_one_for_identical_images(sface_embedder) -> None:
    embedder = sface_embedder
    ref = _images(3, 0, size=48)
    other = _images(3, 9, size=48).flip(-1)
    renders = torch.stack([ref, other], 1)  # (3, 2, 3, 48, 48)
    sim = gm.identity_similarity(embedder, ref, renders, batch_size=2)
    assert sim.shape == (3, 2)
    assert torch.allclose(sim[:, 0], torch.ones(3), atol=1e-5)
    assert (sim[:, 1] < 0.999).all()
    # matches a direct per-pair cosine
    direct = nn.functional.cosine_similarity(embedder(ref), embedder(other), dim=-1)
    assert torch.allclose(sim[:, 1], direct, atol=1e-5)
    assert gm.identity_similarity(embedder, ref, ref).shape == (3, 1)


def test_paired_lpips_zero_for_identical_pairs_and_batched() -> None:
    from albedogan.assets.convert.lpips import build_perceptual

    perceptual = build_perceptual("stlpips")
    a, b = _images(5, 0, size=32), _images(5, 1, size=32)
    same = gm.paired_lpips(perceptual, a, a, batch_size=2)
    diff = gm.paired_lpips(perceptual, a, b, batch_size=2)
    assert same.shape == diff.shape == (5,)
    assert same.abs().max() < 1e-5
    assert (diff > same + 1e-3).all()
    assert torch.allclose(diff, perceptual(a, b), atol=1e-5)


def test_report_files_written_parse_and_record_hashes(tmp_path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights" * 100)
    report = EvaluationReport.create(
        {"FID_sface": np.float64(3.25), "KID_sface_mean": torch.tensor(0.001), "identity_cos_mean": 0.8},
        config={"model": {"lr": 0.002, "sizes": (4, 8)}, "out": tmp_path},
        checkpoints={"albedo": ckpt, "estimator": None},
    )
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths.json.read_text())
    assert data["metrics"]["FID_sface"] == 3.25
    assert data["config"]["model"]["sizes"] == [4, 8]
    import hashlib

    assert data["checkpoints"]["albedo"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest() == file_sha256(ckpt)
    assert data["checkpoints"]["estimator"]["sha256"] is None
    assert EvaluationReport.from_dict(data).metrics == report.metrics
    md = paths.markdown.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| FID_sface")]
    assert rows == ["| FID_sface | 3.25 |"]
    assert "| albedo | " + file_sha256(ckpt) in md
    img = np.asarray(Image.open(paths.plot))
    assert img.ndim == 3 and img.shape[0] == 4 * 22 and (img < 200).any()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval_report.json", "eval_report.md", "eval_report.png"]


def test_report_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="'FID'"):
        EvaluationReport.create({"FID": "abc"})
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        EvaluationReport.create({"x": 1.0}, checkpoints={"a": tmp_path / "missing.ckpt"})
