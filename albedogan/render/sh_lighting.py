"""Second-order spherical-harmonics (SH) Lambertian lighting, RGB (REFERENCE §1).

``shading(n) = sum_k c_k Y_k(n) L_k`` with the 9 polynomial basis functions
``Y = [1, nx, ny, nz, nx ny, nx nz, ny nz, nx^2 - ny^2, 3 nz^2 - 1]`` and the constants ``c_k`` of
:data:`SH_CONSTANTS` (the DECA / AlbedoGAN convention, Lambertian convolution already folded in). ``L`` is the
(N, 9, 3) coefficient tensor (one column per RGB channel). Normals are unit vectors in the frame the coefficients
were estimated in (the FLAME/world frame for DECA-style lighting).
"""

from __future__ import annotations

import math

import torch

from albedogan.utils.shapes import assert_shape

__all__ = ["SH_CONSTANTS", "SHLighting", "directional_sh_coeffs", "sh_basis", "sh_shading"]

_PI = math.pi
#: The 9 constants c_k multiplying the polynomial basis (float64 Python numbers).
SH_CONSTANTS: tuple[float, ...] = (
    1.0 / math.sqrt(4 * _PI),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * (3 / 2) * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * (1 / 2) * math.sqrt(5 / (4 * _PI)),
)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Scaled SH basis ``c_k Y_k(n)``.

    Args:
        normals: (..., 3) float unit normals ``(nx, ny, nz)``.

    Returns:
        (..., 9) same dtype/device.
    """
    if normals.shape[-1] != 3:
        raise ValueError(f"normals: expected last dimension 3, got shape {tuple(normals.shape)}")
    nx, ny, nz = normals.unbind(-1)
    basis = torch.stack(
        [torch.ones_like(nx), nx, ny, nz, nx * ny, nx * nz, ny * nz, nx * nx - ny * ny, 3 * nz * nz - 1], dim=-1
    )
    return basis * normals.new_tensor(SH_CONSTANTS)


def sh_shading(normals: torch.Tensor, sh_coeffs: torch.Tensor) -> torch.Tensor:
    """Lambertian SH shading (irradiance) per normal.

    Args:
        normals: (N, ..., 3) float unit normals (any number of middle dims, e.g. (N, V, 3) or (N, H, W, 3)).
        sh_coeffs: (N, 9, 3) float RGB SH coefficients.

    Returns:
        (N, ..., 3) shading, same dtype; unclamped (may be negative for badly lit normals).
    """
    assert_shape(sh_coeffs, [normals.shape[0], 9, 3], "sh_coeffs")
    basis = sh_basis(normals)  # (N, ..., 9)
    lead = basis.shape[:-1]
    out = torch.bmm(basis.reshape(lead[0], -1, 9), sh_coeffs)  # (N, M, 3)
    return out.reshape(*lead, 3)


def _rgb(value: float | torch.Tensor, name: str) -> torch.Tensor:
    """A float, (3,) or (N, 3) colour -> (M, 3) float64 CPU tensor."""
    t = torch.as_tensor(value).detach().to("cpu", torch.float64)
    if t.ndim == 0:
        return t.expand(1, 3)
    if t.shape[-1] != 3 or t.ndim > 2:
        raise ValueError(f"{name}: expected a float, (3,) or (N, 3), got shape {tuple(t.shape)}")
    return t.reshape(-1, 3)


def directional_sh_coeffs(
    direction: torch.Tensor,
    intensity: float | torch.Tensor = 1.0,
    ambient: float | torch.Tensor = 0.3,
    n_samples: int = 2048,
) -> torch.Tensor:
    """SH coefficients best approximating ``ambient + intensity * max(0, n . d)`` (least squares over the sphere).

    Useful for demos and turntable videos. The fit uses a deterministic Fibonacci sphere, in float64.

    Args:
        direction: (3,) or (N, 3) float direction toward the light (need not be unit), world frame.
        intensity: float or (3,) RGB / (N, 3) light colour.
        ambient: float or (3,) RGB / (N, 3) ambient term.
        n_samples: number of sphere directions in the fit.

    Returns:
        (N, 9, 3) coefficients in ``direction``'s dtype and device (N = 1 for a (3,) direction).
    """
    d = direction[None] if direction.ndim == 1 else direction
    assert_shape(d, [None, 3], "direction")
    dev, dt = d.device, d.dtype
    k = torch.arange(n_samples, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * k / n_samples
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = torch.sqrt(1.0 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)  # (S, 3)
    basis = sh_basis(dirs)  # (S, 9)
    unit = torch.nn.functional.normalize(d.detach().to("cpu", torch.float64), dim=-1)  # (N, 3)
    cos = (dirs @ unit.T).clamp(min=0.0)  # (S, N)
    inten, amb = _rgb(intensity, "intensity"), _rgb(ambient, "ambient")  # (1|N, 3) each
    target = amb[None] + cos[..., None] * inten[None]  # (S, N, 3)
    n = unit.shape[0]
    target = target.expand(n_samples, n, 3).reshape(n_samples, n * 3)
    coeffs = torch.linalg.lstsq(basis, target).solution  # (9, N*3)
    return coeffs.reshape(9, n, 3).permute(1, 0, 2).to(device=dev, dtype=dt).contiguous()


class SHLighting:
    """Holds (N, 9, 3) SH coefficients and shades normals, broadcasting a batch of one to any N.

    Args:
        sh_coeffs: (N, 9, 3), (9, 3) or (N, 27) float coefficients (27 numbers per image = DECA's ``light`` code,
            reshaped row-major to 9 x 3).
    """

    def __init__(self, sh_coeffs: torch.Tensor) -> None:
        if sh_coeffs.ndim == 2 and sh_coeffs.shape[-1] == 27:
            sh_coeffs = sh_coeffs.reshape(-1, 9, 3)
        elif sh_coeffs.ndim == 2:
            sh_coeffs = sh_coeffs[None]
        assert_shape(sh_coeffs, [None, 9, 3], "sh_coeffs")
        self.sh_coeffs = sh_coeffs

    def coeffs_for(self, batch_size: int) -> torch.Tensor:
        """(batch_size, 9, 3) coefficients (expanded from a batch of one if needed)."""
        if self.sh_coeffs.shape[0] == batch_size:
            return self.sh_coeffs
        if self.sh_coeffs.shape[0] == 1:
            return self.sh_coeffs.expand(batch_size, 9, 3)
        raise ValueError(
            f"SHLighting holds {self.sh_coeffs.shape[0]} coefficient sets, cannot shade a batch of {batch_size}"
        )

    def shade(self, normals: torch.Tensor) -> torch.Tensor:
        """(N, ..., 3) unit normals -> (N, ..., 3) shading (see :func:`sh_shading`)."""
        return sh_shading(normals, self.coeffs_for(normals.shape[0]))
