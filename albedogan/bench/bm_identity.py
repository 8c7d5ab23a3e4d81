"""Throughput of the identity networks and the encoder: SFace and ArcFace iresnet100 (forward, forward+backward to
the input, as in an identity loss) and the DECA-style encoder (forward). Random weights: speed does not depend on them.
"""

from __future__ import annotations

import torch

from albedogan.bench.common import BenchResult, time_call
from albedogan.nets.arcface import iresnet100
from albedogan.nets.encoder import DecaEncoder
from albedogan.nets.sface import SFace

__all__ = ["run"]


def _identity_results(name: str, net: torch.nn.Module, batch: int, device: torch.device, repeats: int) -> list[BenchResult]:
    net = net.to(device).eval().requires_grad_(False)
    x = torch.rand(batch, 3, 112, 112, device=device)

    def fwd() -> None:
        with torch.no_grad():
            net(x)

    def fwd_bwd() -> None:
        xi = x.clone().requires_grad_(True)
        net(xi).square().sum().backward()

    return [
        BenchResult(f"{name} 112² batch {batch} fwd", time_call(fwd, device, repeats=repeats), batch, "img"),
        BenchResult(f"{name} 112² batch {batch} fwd+bwd(input)", time_call(fwd_bwd, device, repeats=repeats), batch, "img"),
    ]


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Measure images/s; ``full`` uses GPU-size batches (32), otherwise tiny CPU batches."""
    batch = 32 if full else 2
    repeats = 10 if full else 2
    results = _identity_results("SFace", SFace(), batch, device, repeats)
    results += _identity_results("ArcFace iresnet100", iresnet100(), batch, device, repeats)
    enc = DecaEncoder().to(device).eval()
    x = torch.rand(batch, 3, 224, 224, device=device)

    def enc_fwd() -> None:
        with torch.no_grad():
            enc(x)

    results.append(BenchResult(f"encoder 224² batch {batch} fwd", time_call(enc_fwd, device, repeats=repeats), batch, "img"))
    return results
