"""Full-size dry run (slow; ``make test-fullsize``): official-format assets at the paper's sizes with random weights,
``train.py experiment=ffhq`` at batch 1 and batch 2 (UV 1024²; batch 2 in micro-batches of 1, ``model.micro_batch``:
in one pass it peaks above 22 GB on CPU) for both phases, checkpoint, resume, export, ``infer.py mode=generate|reconstruct|video`` on each export, and batch 1
at UV 512² — see ``scripts/fullsize_dry_run.py`` (the 2-rank DDP run: ``test_fullsize_ddp.py``). ``FULLSIZE_OUT`` keeps the
outputs (default: a temp dir); ``FULLSIZE_ASSETS`` reuses assets written by an earlier run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from tests.helpers.fullsize_driver import run_fullsize_driver

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.fullsize]


def test_fullsize_dry_run(tmp_path):
    out, results = run_fullsize_driver(tmp_path, "--only", "b1,b2,uv512")
    assert json.loads((out / "fullsize.json").read_text())["finished"]

    # assets at the official sizes
    mesh = trimesh.load(out / "generate_b1" / "seed0000" / "mesh.obj", process=False, force="mesh")
    assert len(mesh.vertices) >= 5023 and len(mesh.faces) == 9976
    # both phases ran at batch 1 and 2; resume continued from step 2 to 4
    for run in ("train_b1", "resume_b1", "train_b2", "resume_b2", "train_uv512"):
        assert results[run]["albedo_steps"] >= 1 and results[run]["shape_steps"] >= 1, run
    assert results["train_b2"]["micro_batch"] == 1 and results["train_b2"]["batch"] == 2
    for tag, uv in (("b1", 1024), ("b2", 1024)):
        steps = json.loads((out / f"resume_{tag}" / "steps.json").read_text())["steps"]
        assert [s["step"] for s in steps] == [3, 4], tag
        # paper-size albedo textures from each export; reconstruct and video ran on it
        tex = sorted((out / f"generate_{tag}" / "seed0000").glob("*.png"))
        sizes = {Image.open(p).size for p in tex}
        assert (uv, uv) in sizes, (tag, sizes)
        for p in tex:
            assert np.isfinite(np.asarray(Image.open(p), dtype=np.float64)).all()
        summary = json.loads((out / f"reconstruct_{tag}" / "summary.json").read_text())
        assert summary, "reconstruct wrote no summary"
        assert list((out / f"video_{tag}").rglob("*.mp4")) or list((out / f"video_{tag}").rglob("*.gif"))
    assert (512, 512) in {Image.open(p).size for p in (out / "generate_512" / "seed0000").glob("*.png")}
