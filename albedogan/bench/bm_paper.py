"""Paper-scale figures of issue 12, each eager and ``torch.compile``d, fp32 and bf16 (autocast), with peak memory:

* StyleGAN2 config-f G+D training step (the probe of :mod:`albedogan.bench.bm_stylegan2`) at 256² batch 32 and
  1024² batch 4, in s/kimg (targets on one H100/H200: <= 12.5 and <= 90 s/kimg);
* ``FacePipeline.generate`` faces/s with a config-f G_A at UV 1024² (target >= 50 faces/s);
* one full AlbedoGAN training step per phase at teacher image 1024² + UV 1024² (procedural teacher; target
  >= 5 img/s), eager only, fp32 (``32-true``) and ``bf16-mixed`` — there is no compiled training module yet
  (``model.compile`` is not implemented), so that row says so instead of a number.

``full=False`` (CPU, ``make bench``) runs the G+D and generate probes at tiny sizes, eager fp32 only (the
training step at tiny sizes is :mod:`albedogan.bench.bm_train`'s). A variant that fails (e.g.
``torch.compile`` without a working compiler) is reported with its error in ``extra`` and the others still run.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

from albedogan.bench.common import BenchResult, time_call

__all__ = ["run", "variants"]


def variants(device: torch.device, full: bool) -> list[tuple[str, torch.dtype | None, bool]]:
    """(label, autocast dtype or None, compiled) combinations to measure."""
    if not full or device.type != "cuda":
        return [("eager fp32", None, False)]
    return [("eager fp32", None, False), ("eager bf16", torch.bfloat16, False),
            ("compiled fp32", None, True), ("compiled bf16", torch.bfloat16, True)]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")


def _measure(name: str, make: Callable[[], Callable[[], object]], device: torch.device, items: int, unit: str,
             repeats: int, per_kimg: bool = False) -> BenchResult:
    try:
        _peak_reset(device)
        fn = make()
        sec = time_call(fn, device, warmup=2 if device.type == "cuda" else 1, repeats=repeats)
    except Exception as err:  # report the variant as failed, keep measuring the others
        return BenchResult(f"{name} FAILED: {type(err).__name__}: {str(err).splitlines()[0][:120]}", float("nan"),
                           items, unit)
    extra = {"peak_gpu_mb": _peak_mb(device)}
    if per_kimg:
        extra["s_per_kimg"] = sec / items * 1000.0
    return BenchResult(name, sec, items, unit, extra)


def _gd(device: torch.device, full: bool, repeats: int) -> list[BenchResult]:
    import torch.nn.functional as F

    from albedogan.bench.bm_stylegan2 import _nets

    out = []
    for res in (256, 1024):
        for label, dtype, compiled in variants(device, full):
            def make(res=res, dtype=dtype, compiled=compiled) -> Callable[[], None]:
                torch.manual_seed(0)
                G, D, batch = _nets(res, device, full)
                g, d = (torch.compile(G), torch.compile(D)) if compiled else (G, D)
                opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
                opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
                real = torch.rand(batch, 3, res, res, device=device) * 2 - 1
                z = torch.randn(batch, G.z_dim, device=device)

                def step() -> None:
                    D.requires_grad_(False)
                    G.requires_grad_(True)
                    with _autocast(device, dtype):
                        loss_g = F.softplus(-d(g(torch.randn_like(z)))).float().mean()
                    opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    opt_g.step()
                    G.requires_grad_(False)
                    D.requires_grad_(True)
                    with torch.no_grad(), _autocast(device, dtype):
                        fake = g(torch.randn_like(z))
                    with _autocast(device, dtype):
                        loss_d = F.softplus(d(fake)).float().mean() + F.softplus(-d(real)).float().mean()
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                return step

            batch = (32 if res <= 256 else 4) if full else (4 if res <= 256 else 2)
            size = "config-f" if full else "tiny"
            out.append(_measure(f"G+D {size} {res}² batch {batch} ({label})", make, device, batch, "img", repeats,
                                per_kimg=True))
    return out


def _generate(device: torch.device, full: bool, repeats: int) -> list[BenchResult]:
    from albedogan.flame.head import HeadModel
    from albedogan.inference.pipeline import FacePipeline
    from albedogan.nets.albedo_generator import AlbedoGenerator
    from albedogan.teachers.procedural import ProceduralTeacher

    head = HeadModel.synthetic(Path(tempfile.gettempdir()) / "albedogan_bench_data")
    size, uv, dim, n = (224, 1024, 512, 16) if full else (32, 64, 32, 2)
    teacher = ProceduralTeacher(head, image_size=size, uv_resolution=64, z_dim=dim, w_dim=dim, num_ws=18,
                                calibration_samples=64)
    out = []
    for label, dtype, compiled in variants(device, full):
        def make(dtype=dtype, compiled=compiled) -> Callable[[], object]:
            torch.manual_seed(0)
            g = AlbedoGenerator(w_dim=dim, uv_resolution=uv, channel_base=32768 if full else 512,
                                channel_max=512 if full else 32)
            pipe = FacePipeline(teacher, head, None, torch.compile(g) if compiled else g, render_size=size,
                                uv_resolution=uv).to(device)
            seeds = list(range(n))

            def call() -> object:
                with _autocast(device, dtype):
                    return pipe.generate(seeds)
            return call

        out.append(_measure(f"generate UV {uv}² render {size}² batch {n} ({label})", make, device, n, "face",
                            repeats))
    return out


def _train(device: torch.device, full: bool) -> list[BenchResult]:
    from hydra import compose, initialize_config_dir

    from albedogan.bench.bm_train import ROOT, _time_fit

    out = []
    precisions = ["32-true", "bf16-mixed"] if (full and device.type == "cuda") else ["32-true"]
    image, uv, batch = (1024, 1024, 4) if full else (32, 16, 2)
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("albedo", "shape"):
            for precision in precisions:
                overrides = [f"paths.root_dir={ROOT}", f"paths.data_dir={ROOT / 'data'}", f"paths.output_dir={tmp}",
                             f"model.schedule.cycle=[[{phase},1]]", "model.schedule.warmup_steps=0",
                             f"data.batch_size={batch}"]
                if full:
                    overrides = ["experiment=synthetic", "model=albedogan", *overrides,
                                 f"teacher.image_size={image}", "teacher.uv_resolution=256",
                                 f"model.albedo_generator.uv_resolution={uv}", "estimator.weights_path=null"]
                else:
                    overrides = ["experiment=debug", *overrides]
                name = f"AlbedoGAN step phase {phase} teacher {image}² UV {uv}² batch {batch} (eager {precision})"
                try:
                    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                        cfg = compose(config_name="train", overrides=overrides)
                    _peak_reset(device)
                    seconds, n = _time_fit(cfg, device, 5 if full else 2, precision)
                    out.append(BenchResult(name, seconds, n, "img", {"peak_gpu_mb": _peak_mb(device)}))
                except Exception as err:
                    out.append(BenchResult(f"{name} FAILED: {type(err).__name__}: {str(err)[:120]}", float("nan"),
                                           batch, "img"))
    out.append(BenchResult("AlbedoGAN step (compiled): not measured, model.compile is not implemented",
                           float("nan"), batch, "img"))
    return out


def run(device: torch.device, full: bool) -> list[BenchResult]:
    start = time.perf_counter()
    repeats = 5 if full else 1
    results = _gd(device, full, repeats) + _generate(device, full, repeats) + (_train(device, full) if full else [])
    results.append(BenchResult("bm_paper wall time", time.perf_counter() - start, 1, "run"))
    return results
