"""Training step rate from the teacher cache (``data=teacher_cache``) next to on-the-fly sampling (``data=latent``).

Same sizes as :mod:`albedogan.bench.bm_train` (CPU: ``experiment=debug``; ``full``: 224² teacher, UV 256², batch 8);
the step time is the difference of a long and a one-step fit, so trainer start-up does not count.
The cache is written first (its throughput is reported too), then each phase is timed with both data configs. With
the cache, phase A skips the teacher, the estimator and the target builder (cached estimate and target); phase B
skips the teacher (the estimator it trains still runs).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from albedogan.bench.bm_train import ROOT, _overrides, _time_fit
from albedogan.bench.common import BenchResult

__all__ = ["run"]


def _step_seconds(cfg, device: torch.device, steps: int, precision: str) -> tuple[float, int]:
    """Seconds per training step: (time of a ``steps + 1``-step fit - time of a 1-step fit) / steps, so the
    per-fit overhead (trainer, loader and worker start) cancels."""
    long, batch = _time_fit(cfg, device, steps + 1, precision)
    short, _ = _time_fit(cfg, device, 1, precision)
    return max(long * (steps + 1) - short, 1e-9) / steps, batch


def run(device: torch.device, full: bool) -> list[BenchResult]:
    from albedogan.caching import run_cache

    steps = 20 if full else 10
    precision = "bf16-mixed" if (full and device.type == "cuda") else "32-true"
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        batch = 8 if full else 2
        n = max(64, 4 * (steps + 3) * batch)
        cache = [f"data.root={Path(tmp) / 'cache'}", f"data.write.num_samples={n}", "data.write.shard_size=32",
                 f"data.write.device={device.type}"]
        rates: dict[str, float] = {}
        for phase in ("albedo", "shape"):
            for data in ("latent", "teacher_cache"):
                extra = [f"data={data}", *(cache if data == "teacher_cache" else [])]
                with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                    cfg = compose(config_name="train",
                                  overrides=_overrides(str(ROOT / "data"), tmp, phase, full) + extra)
                if data == "teacher_cache" and phase == "albedo":
                    start = time.perf_counter()
                    run_cache(cfg)
                    seconds = (time.perf_counter() - start) / n
                    results.append(BenchResult(f"write teacher cache ({n} samples, image "
                                               f"{cfg.teacher.image_size}², estimate + target)", seconds, 1, "img"))
                seconds, bs = _step_seconds(cfg, device, steps, precision)
                rates[f"{phase}/{data}"] = bs / seconds
                extra_figures = ({"speedup_vs_on_the_fly": rates[f"{phase}/{data}"] / rates[f"{phase}/latent"]}
                                 if data == "teacher_cache" else {})
                results.append(BenchResult(f"train phase {phase}, data={data} (batch {bs})", seconds, bs, "img",
                                           extra_figures))
    return results
