"""Paper-scale figures of issue 12, eager and ``torch.compile``d, fp32 and bf16, with peak GPU memory:

* StyleGAN2 config-f G+D training step (non-saturating losses, no lazy regularisers) at 256² batch 32 and 1024²
  batch 4, in s/kimg (targets on one H100/H200: <= 12.5 and <= 90 s/kimg);
* ``FaceRenderer`` forward+backward vs raw pytorch3d rasterisation of the same FLAME-sized mesh (target <= 1.5x);
* ``FacePipeline.generate`` faces/s with a config-f G_A at UV 1024² (target >= 50 faces/s);
* one full AlbedoGAN training step per phase at teacher image 1024² + UV 1024² (procedural teacher with 512-d,
  18-row latents, config-f G_A and D, SFace identity loss, no LPIPS term: its weights are not carried to the GPU box;
  batch 4; target >= 5 img/s) through ``trainer.fit``, with ``trainer.precision`` 32-true / bf16-mixed and
  ``model.compile`` false / true.

Variants: "eager fp32", "eager bf16" (autocast, with the fp32 islands of :mod:`albedogan.utils.precision`),
"compiled fp32", "compiled bf16" (:func:`~albedogan.utils.compile.compile_module`, inductor on CUDA). A compiled
variant whose compilation failed is reported as FAILED (not timed eagerly under a compiled label).

One run fits a time budget (``python -m albedogan.bench --budget-s``): the rows run cheapest-first (every eager
row, then the compiled bf16 rows, then compiled fp32), each under its own time limit (:data:`ROW_TIMEOUT_S`, or
what is left of the budget); a row that fails, runs out of time or finds the budget spent is reported as such and
the others still run. Each row is also printed to stderr as it finishes (a run cut short still shows what it
measured). ``ALBEDOGAN_BENCH_ROWS=G+D,generate`` keeps only the rows whose name contains one of the comma-separated
words. ``full=False`` is the CPU smoke version: the same rows at tiny sizes (compiled = the ``aot_eager`` backend,
which traces without generating code).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from albedogan.bench.common import (
    BenchResult,
    BenchTimeout,
    raw_pytorch3d_raster,
    remaining_budget,
    time_call,
    time_limit,
)

__all__ = ["ROW_TIMEOUT_S", "Row", "rows", "run", "variants"]

ROW_TIMEOUT_S = {"full": 150.0, "tiny": 120.0}
"""Time limit of one row (seconds): paper sizes on a GPU / the CPU smoke version."""

_MIN_ROW_S = 15.0  # a row is not started with less budget than this left


@dataclass(frozen=True)
class Variant:
    """One measured combination."""

    label: str
    dtype: torch.dtype | None  # autocast dtype, None = fp32
    compiled: bool

    @property
    def priority(self) -> int:
        """Run order: eager first, then compiled bf16, then compiled fp32 (the cheapest figures first)."""
        return 0 if not self.compiled else (1 if self.dtype is not None else 2)


def variants(device: torch.device, full: bool) -> list[Variant]:  # noqa: ARG001 - same rows on every device
    """The four combinations (eager / compiled × fp32 / bf16)."""
    return [Variant("eager fp32", None, False), Variant("eager bf16", torch.bfloat16, False),
            Variant("compiled fp32", None, True), Variant("compiled bf16", torch.bfloat16, True)]


@dataclass(frozen=True)
class Row:
    """A benchmark row: ``measure()`` returns (seconds per call, extra figures)."""

    name: str
    priority: int
    items: int
    unit: str
    measure: Callable[[], tuple[float, dict[str, float]]]


def _backend(device: torch.device) -> str:
    return "inductor" if device.type == "cuda" else "aot_eager"


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")


def _compile(module: torch.nn.Module, name: str, device: torch.device) -> torch.nn.Module:
    from albedogan.utils.compile import compile_module

    return compile_module(module, name, backend=_backend(device))


def _require_compiled(*modules: torch.nn.Module) -> None:
    from albedogan.utils.compile import _CompiledOrEager

    for m in modules:
        call = getattr(m, "_compiled_call_impl", None)
        if isinstance(call, _CompiledOrEager) and call.failed is not None:
            raise RuntimeError(f"compilation failed, not timed: {call.failed}")


# ---------------------------------------------------------------------------------------------------- G + D
def _gd_rows(device: torch.device, full: bool, repeats: int) -> list[Row]:
    import torch.nn.functional as F

    from albedogan.bench.bm_stylegan2 import _nets

    out = []
    for res in (256, 1024):
        batch = (32 if res <= 256 else 4) if full else (4 if res <= 256 else 2)
        for v in variants(device, full):
            def measure(res=res, v=v) -> tuple[float, dict[str, float]]:
                torch.manual_seed(0)
                G, D, n = _nets(res, device, full)
                g, d = (_compile(G, "G", device), _compile(D, "D", device)) if v.compiled else (G, D)
                opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
                opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
                real = torch.rand(n, 3, res, res, device=device) * 2 - 1
                z = torch.randn(n, G.z_dim, device=device)

                def step() -> None:
                    D.requires_grad_(False)
                    G.requires_grad_(True)
                    with _autocast(device, v.dtype):
                        loss_g = F.softplus(-d(g(torch.randn_like(z)))).float().mean()
                    opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    opt_g.step()
                    G.requires_grad_(False)
                    D.requires_grad_(True)
                    with torch.no_grad(), _autocast(device, v.dtype):
                        fake = g(torch.randn_like(z))
                    with _autocast(device, v.dtype):
                        loss_d = F.softplus(d(fake)).float().mean() + F.softplus(-d(real)).float().mean()
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()

                step()  # first call: compilation
                _require_compiled(G, D)
                sec = time_call(step, device, warmup=1, repeats=repeats)
                return sec, {"s_per_kimg": sec / n * 1000.0}

            size = "config-f" if full else "tiny"
            out.append(Row(f"G+D {size} {res}² batch {batch} ({v.label})", v.priority, batch, "img", measure))
    return out


# ---------------------------------------------------------------------------------------------------- render
def _render_rows(device: torch.device, full: bool, repeats: int) -> list[Row]:
    from albedogan.bench.bm_render import _inputs, _ours
    from albedogan.render import FaceRenderer

    size, batch = (512, 8) if full else (64, 2)
    out = []
    for v in (Variant("eager fp32", None, False), Variant("compiled shader fp32", None, True)):
        def measure(v=v) -> tuple[float, dict[str, float]]:
            mesh, ndc, tex, sh = _inputs(device, batch)
            renderer = FaceRenderer(mesh.faces, mesh.verts_uvs, mesh.faces_uvs, size).to(device)
            if v.compiled:
                _compile(renderer.shader, "the renderer's shader", device)
            ours = _ours(renderer, ndc, tex, sh)
            ours()
            _require_compiled(renderer.shader)
            t_ours = time_call(ours, device, warmup=1, repeats=repeats)
            t_raw = time_call(raw_pytorch3d_raster(mesh.faces, mesh.verts_uvs, mesh.faces_uvs, ndc, tex, size),
                              device, warmup=1, repeats=repeats)
            return t_ours, {"raw_pytorch3d_s": t_raw, "ratio_vs_raw": t_ours / t_raw}

        out.append(Row(f"render {size}² batch {batch} fwd+bwd vs raw pytorch3d ({v.label})", v.priority, batch,
                       "img", measure))
    return out


# ---------------------------------------------------------------------------------------------------- generate
def _generate_rows(device: torch.device, full: bool, repeats: int) -> list[Row]:
    size, uv, dim, n = (224, 1024, 512, 16) if full else (32, 64, 32, 2)
    out = []
    for v in variants(device, full):
        def measure(v=v) -> tuple[float, dict[str, float]]:
            from albedogan.flame.head import HeadModel
            from albedogan.inference.pipeline import FacePipeline
            from albedogan.nets.albedo_generator import AlbedoGenerator
            from albedogan.teachers.procedural import ProceduralTeacher

            head = HeadModel.synthetic(Path(tempfile.gettempdir()) / "albedogan_bench_data")
            teacher = ProceduralTeacher(head, image_size=size, uv_resolution=64, z_dim=dim, w_dim=dim, num_ws=18,
                                        calibration_samples=64)
            torch.manual_seed(0)
            g = AlbedoGenerator(w_dim=dim, uv_resolution=uv, channel_base=32768 if full else 512,
                                channel_max=512 if full else 32)
            if v.compiled:
                _compile(g, "G_A", device)
            pipe = FacePipeline(teacher, head, None, g, render_size=size, uv_resolution=uv).to(device)
            seeds = list(range(n))

            def call() -> object:
                with _autocast(device, v.dtype):
                    return pipe.generate(seeds)

            call()
            _require_compiled(g)
            return time_call(call, device, warmup=1, repeats=repeats), {}

        out.append(Row(f"generate UV {uv}² render {size}² batch {n} ({v.label})", v.priority, n, "face", measure))
    return out


# ---------------------------------------------------------------------------------------------------- train step
def _train_rows(device: torch.device, full: bool) -> list[Row]:
    image, uv, batch = (1024, 1024, 4) if full else (32, 16, 2)
    steps = 5 if full else 2
    out = []
    for phase in ("albedo", "shape"):
        for v in variants(device, full):
            precision = "bf16-mixed" if v.dtype is not None else "32-true"

            def measure(phase=phase, v=v, precision=precision) -> tuple[float, dict[str, float]]:
                seconds, model = _time_fit(_train_cfg(phase, v.compiled, full, batch, image, uv, device), device,
                                           steps, precision)
                _require_compiled(model.G, model.D, model.renderer.shader)
                return seconds, {}

            label = f"{'compiled' if v.compiled else 'eager'} {precision}{', no LPIPS' if full else ''}"
            out.append(Row(f"AlbedoGAN step phase {phase} teacher {image}² UV {uv}² batch {batch} ({label})",
                           v.priority, batch, "img", measure))
    return out


def _train_cfg(phase: str, compiled: bool, full: bool, batch: int, image: int, uv: int, device: torch.device):
    from hydra import compose, initialize_config_dir

    from albedogan.bench.bm_train import ROOT

    out_dir = tempfile.mkdtemp(prefix="albedogan_bm_paper_")
    overrides = [f"paths.root_dir={ROOT}", f"paths.data_dir={ROOT / 'data'}", f"paths.output_dir={out_dir}",
                 f"model.schedule.cycle=[[{phase},1]]", "model.schedule.warmup_steps=0", f"data.batch_size={batch}",
                 f"model.compile={str(compiled).lower()}", f"model.compile_backend={_backend(device)}"]
    if full:  # config-f G_A / D and a 512-d, 18-row teacher latent; SFace identity; no LPIPS (its weights stay home)
        overrides = ["experiment=synthetic", "model=albedogan", *overrides, f"teacher.image_size={image}",
                     "teacher.uv_resolution=256", "teacher.z_dim=512", "teacher.w_dim=512", "teacher.num_ws=18",
                     f"model.albedo_generator.uv_resolution={uv}", "model.albedo_generator.channel_base=32768",
                     "model.albedo_generator.channel_max=512", "model.albedo_weights.perceptual=0",
                     "model.shape_weights.perceptual=0", "estimator.input_size=224", "estimator.weights_path=null"]
    else:
        overrides = ["experiment=debug", *overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _time_fit(cfg, device: torch.device, steps: int, precision: str):
    """(seconds per step of ``trainer.fit`` after a 2-step warm-up fit, the built module)."""
    from albedogan.bench.bm_train import time_model_fit
    from albedogan.models.builder import build_training

    model, data = build_training(cfg)
    return time_model_fit(model, data, device, steps, precision, warmup=2), model  # compiles R1 and plain steps


# ---------------------------------------------------------------------------------------------------- runner
def rows(device: torch.device, full: bool) -> list[Row]:
    """Every row, in run order (by :attr:`Row.priority`, stable)."""
    repeats = 5 if full else 1
    all_rows = (_gd_rows(device, full, repeats) + _render_rows(device, full, repeats)
                + _generate_rows(device, full, repeats) + _train_rows(device, full))
    keep = [w.strip() for w in os.environ.get("ALBEDOGAN_BENCH_ROWS", "").split(",") if w.strip()]
    if keep:
        all_rows = [r for r in all_rows if any(w in r.name for w in keep)]
    return sorted(all_rows, key=lambda r: r.priority)


def _run_row(row: Row, device: torch.device, limit: float) -> BenchResult:
    left = remaining_budget()
    if left is not None and left < _MIN_ROW_S:
        return BenchResult(f"{row.name} SKIPPED: time budget spent", float("nan"), row.items, row.unit)
    limit = limit if left is None else min(limit, left - 5.0)
    _peak_reset(device)
    try:
        with time_limit(limit):
            seconds, extra = row.measure()
        return BenchResult(row.name, seconds, row.items, row.unit, {**extra, "peak_gpu_mb": _peak_mb(device)})
    except BenchTimeout:
        return BenchResult(f"{row.name} TIMEOUT after {limit:.0f} s", float("nan"), row.items, row.unit)
    except Exception as err:  # report the row as failed, keep measuring the others
        first = (str(err).strip().splitlines() or [""])[0][:160]
        return BenchResult(f"{row.name} FAILED: {type(err).__name__}: {first}", float("nan"), row.items, row.unit)
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Measure every row (see the module docstring); failures, timeouts and skips are rows too."""
    start = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # import the compiler stack before any row's time limit can interrupt an import half-way (that would leave a
    # half-initialised module behind and break every later row)
    import torch._dynamo  # noqa: F401
    import torch._inductor.config  # noqa: F401

    if device.type == "cuda":
        import triton  # noqa: F401
    limit = ROW_TIMEOUT_S["full" if full else "tiny"]
    results = []
    for row in rows(device, full):
        results.append(_run_row(row, device, limit))
        r = results[-1]
        extra = ", ".join(f"{k}={v:.4g}" for k, v in r.extra.items())
        sys.stderr.write(f"bm_paper: {r.name}: {r.seconds * 1e3:.1f} ms/call, {r.throughput:.3g} {r.unit}/s"
                         f"{', ' + extra if extra else ''} [{time.perf_counter() - start:.0f} s]\n")
        sys.stderr.flush()
    results.append(BenchResult("bm_paper wall time", time.perf_counter() - start, 1, "run"))
    return results
