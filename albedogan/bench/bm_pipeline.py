"""Full-pipeline memory/throughput: one AlbedoGAN training step per phase and one ``FacePipeline.generate`` batch,
each with images/s, peak memory and ratios against two baselines measured in the same run.

Workloads (embedded world: synthetic head, procedural teacher, G_A sized per ``full``):

* ``train phase albedo`` / ``train phase shape``: ``trainer.fit`` steps of ``AlbedoGANModule`` with a one-phase
  schedule (sizes of :mod:`albedogan.bench.bm_train`: CPU = ``experiment=debug``, image 32², UV 16², batch 2;
  full = image 224², UV 256², batch 8, bf16-mixed on CUDA), seconds per step after a warm-up fit.
* ``generate``: ``FacePipeline.generate`` (teacher → estimate → G_A albedo → two renders) with the set-up of
  :mod:`albedogan.bench.bm_inference` (CPU: 64², UV 64, 4 faces; full: 224² teacher, 256² renders, UV 256, 16 faces).

Baselines, same mesh / size / batch, same process: ``raw raster`` = pytorch3d ``rasterize_meshes`` +
``interpolate_face_attributes`` of the UVs + ``grid_sample`` of a texture (forward+backward for the training steps,
forward only for ``generate``); ``generator only`` = G_A synthesis alone on the same W+ batch (forward+backward /
forward). ``extra``: ``peak_mem_mb``, ``raw_raster_seconds``, ``generator_only_seconds``, ``ratio_vs_raw_raster`` and
``ratio_vs_generator_only`` (workload seconds / baseline seconds; > 1 = the workload is slower) and the baselines'
own ``*_peak_mem_mb``.

Peak memory: CUDA = ``torch.cuda.max_memory_allocated`` minus the allocation before the call (tensors only, not the
caching allocator's reserve); CPU = peak resident set size above the pre-call RSS, sampled every 1 ms from
``/proc/self/statm`` by a background thread, after ``gc.collect()`` and glibc ``malloc_trim(0)``
(``resource.getrusage`` ``ru_maxrss`` is a process-lifetime maximum and misses peaks below an earlier one;
tracemalloc does not see torch's allocator). CPU figures include allocator caching and are coarse (± a few MB).
"""

from __future__ import annotations

import ctypes
import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from albedogan.bench.bm_train import _overrides as train_overrides
from albedogan.bench.common import BenchResult, raw_pytorch3d_raster, time_call
from albedogan.render import WeakPerspectiveCamera

__all__ = ["measure_peak_memory", "run"]

ROOT = Path(__file__).resolve().parents[2]
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``) so that RSS growth reflects the call's own peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS growth then also hides reused, already-mapped memory
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def measure_peak_memory(fn: Callable[[], object], device: torch.device) -> float:
    """Peak extra memory (MB, 2**20 bytes) while ``fn()`` runs once; see the module docstring for the method."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    gc.collect()
    _release_freed_memory()
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - before) / 2**20


def _raw_raster(head, ndc: torch.Tensor, tex: torch.Tensor, size: int, grad: bool) -> Callable[[], None]:
    """Raw pytorch3d textured rasterisation of the head (:func:`~albedogan.bench.common.raw_pytorch3d_raster`)."""
    return raw_pytorch3d_raster(head.faces, head.verts_uvs, head.faces_uvs, ndc, tex, size, grad)


def _generator_only(generator: torch.nn.Module, ws: torch.Tensor, grad: bool, autocast) -> Callable[[], None]:
    """G_A synthesis of ``ws`` (N, num_ws, w_dim) alone (forward, + backward of the sum with ``grad``)."""

    params = list(generator.parameters())

    def step() -> None:
        flags = [p.requires_grad for p in params]
        if grad:  # training leaves G frozen outside its phase; the baseline back-propagates to every weight
            generator.requires_grad_(True)
        try:
            with torch.set_grad_enabled(grad), autocast():
                out = generator(ws)
                if grad:
                    out.float().sum().backward()
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    return step


def _posed_batch(teacher, head, batch: int, device: torch.device, seed: int = 0):
    """(ws (N, num_ws, w_dim), NDC vertices (N, V, 3)) of ``batch`` teacher samples posed by their true camera."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, teacher.z_dim, generator=g).to(device)
    with torch.no_grad():
        sample = teacher.sample(z)
        est = sample.truth.estimate
        verts = head(est.params).vertices
        ndc = WeakPerspectiveCamera(est.cam).transform_points(verts)
    return sample.ws, ndc


def _with_ratios(name: str, seconds: float, items: int, mem: float, raw: tuple[float, float],
                 gen: tuple[float, float]) -> BenchResult:
    return BenchResult(name, seconds, items, "img", extra={
        "peak_mem_mb": mem, "raw_raster_seconds": raw[0], "raw_raster_peak_mem_mb": raw[1],
        "generator_only_seconds": gen[0], "generator_only_peak_mem_mb": gen[1],
        "ratio_vs_raw_raster": seconds / raw[0], "ratio_vs_generator_only": seconds / gen[0]})


def _measure(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    seconds = time_call(fn, device, warmup=1, repeats=repeats)
    return seconds, measure_peak_memory(fn, device)


def _train_results(device: torch.device, full: bool, tmp: str) -> list[BenchResult]:
    from albedogan.models.builder import build_training

    steps, repeats = (10, 5) if full else (3, 2)
    bf16 = full and device.type == "cuda"
    precision = "bf16-mixed" if bf16 else "32-true"
    accel = "gpu" if device.type == "cuda" else "cpu"
    results = []
    for phase in ("albedo", "shape"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=train_overrides(str(ROOT / "data"), tmp, phase, full))
        model, data = build_training(cfg)

        def fit(n: int, model=model, data=data) -> None:
            trainer = pl.Trainer(max_steps=n, accelerator=accel, devices=1, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                                 precision=precision)
            trainer.fit(model, datamodule=data)

        fit(1)  # warm-up: first-call costs
        start = time.perf_counter()
        mem = measure_peak_memory(lambda: fit(steps), device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / steps
        batch, size = int(data.batch_size), int(cfg.teacher.image_size)
        ws, ndc = _posed_batch(model.teacher, model.head, batch, device)
        tex = torch.rand(batch, 3, model.G.uv_resolution, model.G.uv_resolution, device=device)
        raw = _measure(_raw_raster(model.head, ndc, tex, size, grad=True), device, repeats)
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
        gen = _measure(_generator_only(model.G, ws, True, autocast), device, repeats)
        model.G.zero_grad(set_to_none=True)  # the baseline's gradients are not the module's
        results.append(_with_ratios(
            f"train step phase {phase} (image {size}², UV {model.G.uv_resolution}², batch {batch}, {precision}, "
            f"{model.head.faces.shape[0]} faces)",
            seconds, batch, mem, raw, gen))
    return results


def _generate_result(device: torch.device, full: bool) -> BenchResult:
    from albedogan.bench.bm_inference import _setup

    n = 16 if full else 4
    repeats = 3 if device.type == "cuda" else 2
    pipeline, _, size = _setup(device, full)
    seeds = list(range(n))
    seconds, mem = _measure(lambda: pipeline.generate(seeds), device, repeats)
    ws, ndc = _posed_batch(pipeline.teacher, pipeline.head, n, device)
    uv = pipeline.albedo_generator.uv_resolution
    tex = torch.rand(n, 3, uv, uv, device=device)
    raw = _measure(_raw_raster(pipeline.head, ndc, tex, pipeline.render_size, grad=False), device, repeats)
    gen = _measure(_generator_only(pipeline.albedo_generator, ws, False, nullcontext), device, repeats)
    return _with_ratios(f"generate (teacher {size}², render {pipeline.render_size}², UV {uv}, batch {n}, "
                        f"{pipeline.head.faces.shape[0]} faces)",
                        seconds, n, mem, raw, gen)


def run(device: torch.device, full: bool) -> list[BenchResult]:
    """Training step per phase and one generate batch, each with peak memory and baseline ratios in ``extra``."""
    with tempfile.TemporaryDirectory() as tmp:
        results = _train_results(device, full, tmp)
    results.append(_generate_result(device, full))
    return results


if __name__ == "__main__":  # pragma: no cover - manual use: python -m albedogan.bench.bm_pipeline
    import logging

    from albedogan.utils.logging import get_logger

    logging.basicConfig(level=logging.INFO)
    log = get_logger(__name__)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for r in run(dev, full=dev.type == "cuda"):
        log.info("%s: %.4f s/call, %.2f %s/s, %s", r.name, r.seconds, r.throughput, r.unit, r.extra)
