"""Exact point-to-triangle distances (vs independent references) and Umeyama similarity fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from albedogan.eval.geometry import (
    apply_similarity,
    closest_point_on_triangles,
    compose_similarity,
    point_to_mesh_distance,
    point_to_triangle_distance,
    point_to_triangle_distance_bruteforce,
    triangle_anchors,
    umeyama,
)


def _reference_closest(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Independent method: project onto the plane; if outside, best of the three clamped segment projections."""
    n = np.cross(b - a, c - a)
    q = p - np.dot(p - a, n) / np.dot(n, n) * n
    # barycentric coordinates of the projection by areas
    area = np.dot(np.cross(b - a, c - a), n)
    l_a = np.dot(np.cross(c - b, q - b), n) / area
    l_b = np.dot(np.cross(a - c, q - c), n) / area
    l_c = 1 - l_a - l_b
    if min(l_a, l_b, l_c) >= 0:
        return q
    best, best_d = None, np.inf
    for s, e in ((a, b), (b, c), (c, a)):
        t = np.clip(np.dot(p - s, e - s) / np.dot(e - s, e - s), 0, 1)
        x = s + t * (e - s)
        if np.linalg.norm(p - x) < best_d:
            best, best_d = x, np.linalg.norm(p - x)
    return best


def test_closest_point_hand_computed_regions() -> None:
    a, b, c = torch.tensor([0.0, 0, 0]), torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0])
    cases = {  # point -> expected closest point (region)
        (-1.0, -1.0, 0.5): (0, 0, 0),  # vertex A
        (2.0, -0.5, 1.0): (1, 0, 0),  # vertex B
        (-0.5, 2.0, 0.0): (0, 1, 0),  # vertex C
        (0.5, -1.0, 2.0): (0.5, 0, 0),  # edge AB
        (-3.0, 0.25, -1.0): (0, 0.25, 0),  # edge AC
        (1.0, 1.0, 0.3): (0.5, 0.5, 0),  # edge BC
        (0.2, 0.3, -4.0): (0.2, 0.3, 0),  # face interior
    }
    p = torch.tensor(list(cases.keys()))
    q = closest_point_on_triangles(p, a, b, c)
    torch.testing.assert_close(q, torch.tensor(list(cases.values()), dtype=torch.float32))


def test_closest_point_matches_independent_reference_random() -> None:
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(400, 3, 3))
    # points spread so that all 7 Voronoi regions occur
    p = tri.mean(1) + rng.normal(size=(400, 3)) * 1.5
    q = closest_point_on_triangles(torch.from_numpy(p), *(torch.from_numpy(tri[:, i]) for i in range(3))).numpy()
    ref = np.stack([_reference_closest(p[i], *tri[i]) for i in range(len(p))])
    np.testing.assert_allclose(q, ref, atol=1e-9)


def test_degenerate_triangles_use_edges() -> None:
    a = torch.tensor([[0.0, 0, 0], [1.0, 1, 1]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0, 0], [1.0, 1, 1]], dtype=torch.float64)
    c = torch.tensor([[2.0, 0, 0], [1.0, 1, 1]], dtype=torch.float64)  # collinear; a single point
    p = torch.tensor([[1.5, 2.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    q = closest_point_on_triangles(p, a, b, c)
    torch.testing.assert_close(q, torch.tensor([[1.5, 0, 0], [1.0, 1, 1]], dtype=torch.float64))


def _bumpy_sphere(subdiv: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    v = torch.tensor(m.vertices)
    v = v * (1 + 0.15 * torch.sin(3 * v[:, :1]) * torch.cos(2 * v[:, 1:2]))
    return v, torch.tensor(m.faces)


@pytest.mark.parametrize("backend", ["kdtree", "pytorch3d"])
def test_accelerated_equals_bruteforce(backend: str) -> None:
    v, f = _bumpy_sphere(2)
    tri = v[f]
    g = torch.Generator().manual_seed(1)
    near = v[torch.randint(0, len(v), (200,), generator=g)] + 0.01 * torch.randn(200, 3, generator=g, dtype=v.dtype)
    edge_mid = 0.5 * (tri[:100, 0] + tri[:100, 1]) * 1.02  # just outside edges
    far = 3 * torch.randn(30, 3, generator=g, dtype=v.dtype)  # far away: the bound fails, brute-force fallback
    p = torch.cat([near, edge_mid, far, v[:50]])
    d, q, fi = point_to_triangle_distance(p, tri, backend=backend)
    db, qb, fb = point_to_triangle_distance_bruteforce(p, tri)
    torch.testing.assert_close(d, db, atol=1e-12, rtol=0)
    torch.testing.assert_close(q, qb, atol=1e-9, rtol=0)
    torch.testing.assert_close(d[-50:], torch.zeros(50, dtype=d.dtype), atol=1e-12, rtol=0)  # vertices lie on it
    # the returned face really contains the closest point at that distance
    torch.testing.assert_close((q - p).norm(dim=1), d)


def test_anchors_cover_their_faces() -> None:
    v, f = _bumpy_sphere(1)
    tri = v[f] * torch.tensor([1.0, 3.0, 0.5], dtype=v.dtype)  # stretch: unequal face sizes, several levels
    anchors, owner, radius = triangle_anchors(tri, rho=0.15)
    counts = torch.bincount(owner, minlength=len(f))
    assert bool((counts >= 1).all()) and int(counts.max()) > 1
    # random points of each face are within `radius` of one of that face's anchors
    g = torch.Generator().manual_seed(0)
    w = torch.rand(len(f), 20, 3, generator=g, dtype=v.dtype)
    w = w / w.sum(-1, keepdim=True)
    pts = torch.einsum("fsk,fkd->fsd", w, tri)  # (F, 20, 3)
    d = torch.cdist(pts.reshape(-1, 3), anchors)  # (F·20, A)
    same = owner[None, :] == torch.arange(len(f)).repeat_interleave(20)[:, None]
    d = torch.where(same, d, torch.full_like(d, float("inf")))
    assert float(d.min(1).values.max()) <= radius + 1e-12


def test_pytorch3d_point_face_distance_is_not_exact() -> None:
    """Why pytorch3d's point_face_distance is not our fast path (facts recorded in the geometry docstring)."""
    from pytorch3d.loss.point_mesh_distance import point_face_distance

    v, f = _bumpy_sphere(2)
    tri = (v[f] * 0.1).float()  # metres-like sizes: face areas << pytorch3d's default 5e-3 threshold
    g = torch.Generator().manual_seed(2)
    p = (v * 0.1).float() + 0.003 * torch.randn(v.shape[0], 3, generator=g)
    first = torch.zeros(1, dtype=torch.long)
    exact = point_to_triangle_distance(p.double(), tri.double())[0] ** 2
    ref = torch.tensor([min(np.sum((_reference_closest(x, *t) - x) ** 2) for t in tri.double().numpy())
                        for x in p.double().numpy()[:12]], dtype=torch.float64)
    torch.testing.assert_close(exact[:12], ref, atol=1e-15, rtol=1e-9)  # ours = independent reference
    theirs = point_face_distance(p, first, tri, first, p.shape[0], 1e-12).double()
    close = (theirs - exact).abs() <= 1e-4 * exact + 1e-12
    assert float(close.float().mean()) > 0.9  # mostly the same ...
    assert bool((theirs[~close] < exact[~close]).all())  # ... but some near-edge points are underestimated
    default = point_face_distance(p, first, tri, first, p.shape[0]).double()
    assert float((default - exact).abs().max()) > 1e-6  # default area threshold: edges only


def test_gradient_is_unit_direction_away_from_surface() -> None:
    v, f = _bumpy_sphere(2)
    p = (v[:30] * 1.1).clone().requires_grad_(True)
    d, q, _ = point_to_mesh_distance(p, v, f)
    d.sum().backward()
    expected = (p - q).detach() / d.detach()[:, None]
    torch.testing.assert_close(p.grad, expected, atol=1e-6, rtol=1e-6)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="triangles"):
        point_to_triangle_distance(torch.zeros(3, 3), torch.zeros(0, 3, 3))
    with pytest.raises(ValueError, match="points"):
        point_to_triangle_distance(torch.zeros(3, 2), torch.zeros(1, 3, 3))


def _random_rotation(g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.linalg.det(q) > 0 else -q


def test_umeyama_recovers_known_similarity() -> None:
    g = torch.Generator().manual_seed(3)
    src = torch.randn(7, 3, generator=g, dtype=torch.float64)
    R, s, t = _random_rotation(g), torch.tensor(2.7, dtype=torch.float64), torch.tensor([10.0, -3.0, 0.5],
                                                                                       dtype=torch.float64)
    dst = apply_similarity(src, s, R, t)
    s2, R2, t2 = umeyama(src, dst)
    torch.testing.assert_close(s2, s)
    torch.testing.assert_close(R2, R)
    torch.testing.assert_close(t2, t)
    s3, R3, t3 = umeyama(src, dst, with_scale=False)
    assert float(s3) == 1.0
    torch.testing.assert_close(R3, R)


def test_umeyama_never_returns_a_reflection() -> None:
    g = torch.Generator().manual_seed(4)
    src = torch.randn(10, 3, generator=g, dtype=torch.float64)
    dst = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # mirror image
    _, R, _ = umeyama(src, dst)
    assert float(torch.linalg.det(R)) == pytest.approx(1.0)


def test_compose_similarity_matches_sequential_application() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    a = (torch.tensor(1.5, dtype=torch.float64), _random_rotation(g), torch.randn(3, generator=g, dtype=torch.float64))
    b = (torch.tensor(0.3, dtype=torch.float64), _random_rotation(g), torch.randn(3, generator=g, dtype=torch.float64))
    torch.testing.assert_close(apply_similarity(x, *compose_similarity(b, a)), apply_similarity(apply_similarity(x, *a), *b))
