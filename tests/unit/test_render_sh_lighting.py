"""SH lighting: basis and shading against the formula written out here; directional fit; gradients."""

import math

import pytest
import torch

from albedogan.render import SHLighting, directional_sh_coeffs, sh_basis, sh_shading


def _direct_shading(n: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Plain-Python reference for one normal (3,) and coefficients (9, 3)."""
    x, y, z = (float(v) for v in n)
    pi = math.pi
    c = [
        1 / math.sqrt(4 * pi),
        (2 * pi / 3) * math.sqrt(3 / (4 * pi)),
        (2 * pi / 3) * math.sqrt(3 / (4 * pi)),
        (2 * pi / 3) * math.sqrt(3 / (4 * pi)),
        (pi / 4) * 3 * math.sqrt(5 / (12 * pi)),
        (pi / 4) * 3 * math.sqrt(5 / (12 * pi)),
        (pi / 4) * 3 * math.sqrt(5 / (12 * pi)),
        (pi / 4) * 1.5 * math.sqrt(5 / (12 * pi)),
        (pi / 4) * 0.5 * math.sqrt(5 / (4 * pi)),
    ]
    y_k = [1, x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1]
    out = [sum(c[k] * y_k[k] * float(L[k, ch]) for k in range(9)) for ch in range(3)]
    return torch.tensor(out, dtype=torch.float64)


def test_sh_shading_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(2, 5, 3, generator=g, dtype=torch.float64), dim=-1)
    L = torch.randn(2, 9, 3, generator=g, dtype=torch.float64)
    out = sh_shading(n, L)
    assert out.shape == (2, 5, 3)
    for b in range(2):
        for i in range(5):
            torch.testing.assert_close(out[b, i], _direct_shading(n[b, i], L[b]))


def test_sh_basis_shape_and_constant_term():
    b = sh_basis(torch.tensor([[0.0, 0.0, 1.0]]))
    assert b.shape == (1, 9)
    assert b[0, 0].item() == pytest.approx(1 / math.sqrt(4 * math.pi))


def test_sh_image_layout_and_float32():
    n = torch.nn.functional.normalize(torch.randn(3, 4, 5, 3), dim=-1)  # (N, H, W, 3)
    L = torch.randn(3, 9, 3)
    out = sh_shading(n, L)
    assert out.shape == (3, 4, 5, 3) and out.dtype == torch.float32
    ref = _direct_shading(n[1, 2, 3].double(), L[1].double()).float()
    torch.testing.assert_close(out[1, 2, 3], ref, atol=1e-5, rtol=1e-5)


def test_sh_gradcheck():
    n = torch.nn.functional.normalize(torch.randn(2, 4, 3, dtype=torch.float64), dim=-1).requires_grad_(True)
    L = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sh_shading, (n, L))


def test_directional_fit_approximates_clamped_cosine():
    d = torch.tensor([0.3, 0.4, 1.0], dtype=torch.float64)
    L = directional_sh_coeffs(d, intensity=1.0, ambient=0.2)
    assert L.shape == (1, 9, 3)
    dirs = torch.nn.functional.normalize(torch.randn(1, 500, 3, dtype=torch.float64), dim=-1)
    target = 0.2 + (dirs @ torch.nn.functional.normalize(d, dim=0)).clamp(min=0)
    err = (sh_shading(dirs, L)[..., 0] - target).abs()
    assert err.mean() < 0.05 and err.max() < 0.15  # 2nd-order SH of a clamped cosine is a smooth approximation
    lit = sh_shading(torch.nn.functional.normalize(d, dim=0).view(1, 1, 3), L)[0, 0]
    assert (lit > 1.0).all()


def test_sh_lighting_broadcasts_and_accepts_27():
    L = torch.randn(1, 9, 3)
    n = torch.nn.functional.normalize(torch.randn(4, 6, 3), dim=-1)
    out = SHLighting(L).shade(n)
    torch.testing.assert_close(out, sh_shading(n, L.expand(4, 9, 3)))
    torch.testing.assert_close(SHLighting(L.reshape(1, 27)).shade(n), out)
    with pytest.raises(ValueError, match="coefficient sets"):
        SHLighting(torch.randn(2, 9, 3)).shade(n)
