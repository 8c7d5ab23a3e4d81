"""Full-size dry run (slow; ``make test-fullsize``): official-format assets at the paper's sizes with random weights,
``train.py experiment=ffhq`` at batch 1 and 2 for both phases (UV 1024² and 512²), checkpoint, resume, export,
``infer.py mode=generate|reconstruct|video`` — see ``scripts/fullsize_dry_run.py``. ``FULLSIZE_OUT`` keeps the
outputs (default: a temp dir); ``FULLSIZE_ASSETS`` reuses assets written by an earlier run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_fullsize_dry_run(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "fullsize_dry_run", Path(__file__).resolve().parents[2] / "scripts" / "fullsize_dry_run.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    out = Path(os.environ.get("FULLSIZE_OUT", tmp_path / "fullsize"))
    assets = os.environ.get("FULLSIZE_ASSETS")
    argv = ["--out", str(out)] + (["--assets", assets] if assets else [])
    results = driver.main(argv)
    assert json.loads((out / "fullsize.json").read_text())["finished"]

    # assets at the official sizes
    mesh = trimesh.load(out / "generate_1024" / "seed0000" / "mesh.obj", process=False, force="mesh")
    assert len(mesh.vertices) >= 5023 and len(mesh.faces) == 9976
    # both phases ran at batch 1 and 2; resume continued from step 2 to 4
    for run in ("train_b1", "resume_b1", "train_b2", "train_uv512"):
        assert results[run]["albedo_steps"] >= 1 and results[run]["shape_steps"] >= 1, run
    steps = json.loads((out / "resume_b1" / "steps.json").read_text())["steps"]
    assert [s["step"] for s in steps] == [3, 4]
    # paper-size albedo textures: 1024² from the b1 export, 512² from the uv512 export
    tex = sorted((out / "generate_1024" / "seed0000").glob("*.png"))
    sizes = {Image.open(p).size for p in tex}
    assert (1024, 1024) in sizes, sizes
    assert (512, 512) in {Image.open(p).size for p in (out / "generate_512" / "seed0000").glob("*.png")}
    summary = json.loads((out / "reconstruct_1024" / "summary.json").read_text())
    assert summary, "reconstruct wrote no summary"
    assert list((out / "video_1024").rglob("*.mp4")) or list((out / "video_1024").rglob("*.gif"))
    for p in tex:
        assert np.isfinite(np.asarray(Image.open(p), dtype=np.float64)).all()
