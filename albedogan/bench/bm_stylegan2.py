"""StyleGAN2 throughput: generator images/s (256², 1024²) and a G+D training step in s/kimg.

``full=True`` uses the paper networks (config-f at 1024² with channel_base 32768; 256² with the stylegan2-ada
``paper256`` base 16384), fp16 on the 4 highest resolutions with conv_clamp 256 on CUDA, batch 32 at 256² and 4 at
1024² (the batch sizes of REFERENCE §7). ``full=False`` keeps the resolutions but uses tiny channel counts
(channel_max 64) and batch 4 / 2 so it runs on a CPU.

The training step is NOT the real objective (no R1 / path-length regularisation, which add their own lazy passes):
non-saturating logistic losses, one G step (``z -> G -> D``) and one D step (real + detached fake), each with a
backward and an Adam update -- a throughput probe of the networks only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from albedogan.bench.common import BenchResult, time_call
from albedogan.nets.stylegan2 import Discriminator, Generator

__all__ = ["run"]


def _nets(res: int, device: torch.device, full: bool) -> tuple[Generator, Discriminator, int]:
    if full:
        base = 32768 if res >= 1024 else 16384
        cfg = dict(channel_base=base, channel_max=512, num_fp16_res=4 if device.type == "cuda" else 0,
                   conv_clamp=256 if device.type == "cuda" else None)
        g = Generator(img_resolution=res, **cfg)
        batch = 32 if res <= 256 else 4
    else:
        cfg = dict(channel_base=2048 if res <= 256 else 8192, channel_max=64)
        g = Generator(z_dim=64, w_dim=64, img_resolution=res, **cfg)
        batch = 4 if res <= 256 else 2
    d = Discriminator(img_resolution=res, **cfg)
    return g.to(device), d.to(device), batch


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Measure generator inference and a G+D training step at 256² and 1024².

    Args:
        device: where to run.
        full: paper-size networks (for a GPU) instead of tiny CPU ones.

    Returns:
        One generator result (``img``/s) and one training result (``extra["s_per_kimg"]``) per resolution.
    """
    results: list[BenchResult] = []
    for res in (256, 1024):
        torch.manual_seed(0)
        G, D, batch = _nets(res, device, full)
        z = torch.randn(batch, G.z_dim, device=device)

        G.eval()
        with torch.no_grad():
            sec = time_call(lambda: G(z, truncation_psi=0.5, noise_mode="const"), device, warmup=1, repeats=3)
        size = "config-f" if full else "tiny"
        results.append(BenchResult(f"stylegan2 G {size} {res}² batch {batch} inference", sec, batch, "img"))

        G.train()
        D.train()
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
        real = torch.rand(batch, 3, res, res, device=device) * 2 - 1

        def step() -> None:
            D.requires_grad_(False)
            G.requires_grad_(True)
            loss_g = F.softplus(-D(G(torch.randn_like(z)))).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            G.requires_grad_(False)
            D.requires_grad_(True)
            with torch.no_grad():
                fake = G(torch.randn_like(z))
            loss_d = F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

        sec = time_call(step, device, warmup=1, repeats=2 if (full or res <= 256) else 1)
        results.append(BenchResult(f"stylegan2 G+D {size} {res}² batch {batch} train step", sec, batch, "img",
                                   extra={"s_per_kimg": sec / batch * 1000.0}))
    return results
