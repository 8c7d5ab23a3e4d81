"""DDP at full size (slow; ``make test-fullsize``): ``train.py experiment=ffhq trainer=ddp`` on 2 CPU processes (gloo)
with the paper-size official-format assets (1024² teacher, iresnet100 ArcFace and MICA, DECA), one step per phase
and a validation batch per rank — see ``scripts/fullsize_dry_run.py --only ddp``. Checks that the ranks' latent
streams and validation seeds are disjoint, that every logged training and validation metric is the mean over the
ranks, and that only rank 0 writes (checkpoints, export, image grid, CSV log). ``FULLSIZE_OUT`` keeps the outputs,
``FULLSIZE_ASSETS`` reuses assets, ``FULLSIZE_DDP_UV`` sets the UV resolution (default 256²; 1024² needs ~2 x 12 GB)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch

from tests.helpers.fullsize_driver import run_fullsize_driver

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.fullsize]


def _csv_values(path: Path) -> dict[str, list[float]]:
    """Every non-empty value per column of a Lightning CSV log, in row order."""
    values: dict[str, list[float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for name, value in row.items():
                if value not in ("", None) and name not in ("epoch", "step"):
                    values.setdefault(name, []).append(float(value))
    return values


def test_fullsize_ddp_two_ranks(tmp_path):
    out, results = run_fullsize_driver(tmp_path, "--only", "ddp", "--ddp-uv", os.environ.get("FULLSIZE_DDP_UV", "256"))
    check_ddp_run(out, results["ddp"])


def check_ddp_run(out: Path, results: dict) -> None:
    """The DDP checks on the outputs of ``fullsize_dry_run.py --only ddp`` in ``out`` (``results``: its record)."""
    run, probe = out / "ddp", out / "ddp_probe"
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert results["albedo_steps"] >= 1 and results["shape_steps"] >= 1
    assert all(mb > 0 for mb in results["peak_rss_mb_per_rank"])

    # each rank draws its own latents and validation seeds
    train = [set(r["train_index"]) for r in ranks]
    val = [set(r["val_seed"]) for r in ranks]
    assert all(train) and not train[0] & train[1], train
    assert all(val) and not val[0] & val[1], val

    # every metric logged by rank 0 is the mean of the ranks' own values (equal batch sizes per rank)
    logged = _csv_values(next(run.rglob("metrics.csv")))
    raw = [{} for _ in ranks]
    for r, record in enumerate(ranks):
        for _, name, value in record["logged"]:
            raw[r].setdefault(name, []).append(value)
    names = sorted(n for n in raw[0] if n.startswith(("train/albedo/", "train/shape/", "val/")))
    assert any(n.startswith("train/albedo/") for n in names) and any(n.startswith("train/shape/") for n in names)
    assert "val/photometric" in names
    differs = False
    for name in names:
        # compare the distinct values, in order (Lightning would repeat a step metric's last value on later rows;
        # AlbedoGANModule.on_train_batch_start drops them, and logs written before that still have them)
        values = list(dict.fromkeys(logged[name]))
        assert len(raw[0][name]) == len(raw[1][name]) == len(values), (name, raw[0][name], raw[1][name], values)
        for a, b, mean in zip(raw[0][name], raw[1][name], values):
            assert math.isclose(mean, (a + b) / 2, rel_tol=1e-5, abs_tol=1e-7), (name, a, b, mean)
            differs |= not math.isclose(a, b, rel_tol=1e-4)
    assert differs, "the ranks logged identical values: the mean check would not tell reduced from rank 0's own"

    # only rank 0 writes: checkpoints, the inference export, the image grid and the CSV log
    assert ranks[1]["writes"] == [], ranks[1]["writes"]
    written = set(ranks[0]["writes"])
    for path in ("checkpoints/last.ckpt", "checkpoints/inference.safetensors"):
        assert path in written and (run / path).is_file(), path
    assert any(p.startswith("images/grid_step") and p.endswith(".png") for p in written), written
    assert any(p.endswith("metrics.csv") for p in written), written
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
