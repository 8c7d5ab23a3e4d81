"""IdentityEmbedder: unit vectors, same person closer than different people on real photos, crops, factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from albedogan.assets.locate import MissingAssetError
from albedogan.assets.convert.identity import build_identity_embedder
from albedogan.nets.identity import IdentityEmbedder, cosine_distance, cosine_similarity
from tests.helpers.real_faces import real_faces, reference_similarity


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return build_identity_embedder("sface")


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def embeddings(embedder) -> tuple[torch.Tensor, list[str]]:
    faces = real_faces()
    with torch.no_grad():
        emb = torch.cat([embedder(_tensor(f.image), torch.from_numpy(f.landmarks)[None]) for f in faces])
    return emb, [f.person for f in faces]


def test_unit_vectors_and_frozen(embedder, embeddings) -> None:
    emb, _ = embeddings
    assert emb.shape[1] == 128
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(emb)))
    assert not any(p.requires_grad for p in embedder.parameters())
    embedder.train()
    assert not embedder.net.training


def test_same_person_more_similar_than_different_people(embeddings) -> None:
    emb, people = embeddings
    sim = emb @ emb.T
    same = [sim[i, j] for i in range(len(people)) for j in range(i) if people[i] == people[j]]
    diff = [sim[i, j] for i in range(len(people)) for j in range(i) if people[i] != people[j]]
    assert len(same) >= 1 and len(diff) >= 15
    assert min(same) > max(diff) + 0.2, (same, max(diff))


def test_landmark_crop_matches_opencv_alignment(embedder) -> None:
    import cv2
    face = real_faces()[0]
    tform = reference_similarity(face.landmarks.astype(np.float64), embedder.template.numpy().astype(np.float64))
    ref = cv2.warpAffine(face.image.astype(np.float32) / 255.0, tform, (112, 112), flags=cv2.INTER_LINEAR)
    ours = embedder.crop(_tensor(face.image), torch.from_numpy(face.landmarks)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref)[4:-4, 4:-4].mean() < 2e-3


def test_large_image_prefilter_keeps_identity(embedder) -> None:
    face = real_faces()[0]
    big = F.interpolate(_tensor(face.image), scale_factor=3.0, mode="bilinear", align_corners=False)
    lm = (torch.from_numpy(face.landmarks)[None] + 0.5) * 3.0 - 0.5
    with torch.no_grad():
        a = embedder(_tensor(face.image), torch.from_numpy(face.landmarks)[None])
        b = embedder(big, lm)
    assert cosine_similarity(a, b).item() > 0.95


def test_center_crop_box_and_gradients(embedder) -> None:
    ys, xs = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    image = torch.stack([xs / 255.0, ys / 255.0, torch.zeros_like(xs)])[None]  # R = x, G = y
    crop = embedder.crop(image)
    assert crop.shape == (1, 3, 112, 112)
    # the box spans x in [32, 220), y in [35, 223) pixels of a 256 image
    assert abs(crop[0, 0].min().item() * 255 - 32) < 1.5 and abs(crop[0, 0].max().item() * 255 - 219) < 1.5
    assert abs(crop[0, 1].min().item() * 255 - 35) < 1.5 and abs(crop[0, 1].max().item() * 255 - 222) < 1.5
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    cosine_distance(embedder(x[:1]), embedder(x[1:])).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def test_cosine_helpers() -> None:
    a = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 2.0], [6.0, 8.0]])
    torch.testing.assert_close(cosine_distance(a, b), torch.tensor([1.0, 0.0]))


def test_factory_errors() -> None:
    with pytest.raises(MissingAssetError, match="backbone.pth"):
        build_identity_embedder("arcface")
    with pytest.raises(ValueError, match="unknown kind"):
        build_identity_embedder("vggface")  # type: ignore[arg-type]
