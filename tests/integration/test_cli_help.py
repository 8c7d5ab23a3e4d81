"""``--help`` of both entry points, and ``output_dir=`` as the run directory (the project tree stays untouched)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from albedogan.cli.launch import preflight, register_resolvers

pytestmark = pytest.mark.integration

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONDONTWRITEBYTECODE": "1"}


def _help(root, script, *args) -> str:
    out = subprocess.run([sys.executable, script, *args, "--help"], cwd=root, capture_output=True, text=True,
                         timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def _examples(text: str, script: str) -> list[list[str]]:
    return [shlex.split(ln.strip())[2:] for ln in text.splitlines() if ln.strip().startswith(f"python {script} ")
            and "[" not in ln.split(script, 1)[1][:3]]


def test_infer_help(project_root):
    text = _help(project_root, "infer.py")
    assert text.startswith("Usage: python infer.py mode=<mode>")
    assert len(text.splitlines()) < 100
    for mode in ("generate", "reconstruct", "video", "evaluate", "head_grid", "app"):
        assert re.search(rf"^  mode={mode}\s+\S", text, re.M), mode  # each mode with its sentence
    assert len(_examples(text, "infer.py")) == 5
    assert "== Outputs ==" in text and "output_dir=" in text
    groups = text.split("== Config groups (group=option) ==")[1].split("\n\n")[0]
    for group in ("mode", "world", "flame", "teacher", "estimator", "paths"):
        assert re.search(rf"^  {group}\s", groups, re.M), group
    for group in ("trainer", "model", "logger", "experiment", "callbacks", "data", "debug"):
        assert not re.search(rf"^  {group}\s", groups, re.M), group


def test_infer_mode_help_lists_its_keys(project_root):
    text = _help(project_root, "infer.py", "mode=reconstruct")
    section = text.split("== Keys of mode=reconstruct")[1]
    assert "mode.max_pixels=100000000" in section and "decompression-bomb" in section
    assert "mode.detector=auto" in section and "one of auto | yunet | insightface" in section
    assert "mode.n=" not in section  # generate's keys are not shown for reconstruct


def test_train_help(project_root):
    text = _help(project_root, "train.py")
    assert text.startswith("Usage: python train.py")
    for exp in ("synthetic", "synthetic_estimator", "ffhq", "debug"):
        assert re.search(rf"^  experiment={exp}\s+\S", text, re.M), exp
    assert len(_examples(text, "train.py")) == 5
    groups = text.split("== Config groups (group=option) ==")[1].split("\n\n")[0]
    assert re.search(r"^  trainer\s", groups, re.M) and not re.search(r"^  mode\s", groups, re.M)


@pytest.mark.parametrize("entry", ["infer", "train"])
def test_help_examples_compose(project_root, entry):
    """Every example of --help is a command line Hydra composes (files it names are the user's)."""
    text = _help(project_root, f"{entry}.py")
    register_resolvers()
    for args in _examples(text, f"{entry}.py"):
        args = [a for a in args if a != "-m"]
        if "-m" in text and any("," in a for a in args):
            args = [a.split(",")[0] for a in args]  # a sweep: compose its first job
        assert preflight(entry, args, run=False) == [], args


def _tree(root) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=root,
                          capture_output=True, text=True).stdout


def test_output_dir_is_the_run_directory(project_root, synthetic_data_dir, tmp_path):
    before = _tree(project_root)
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=head_grid", "mode.rows=1", "mode.cols=1", "mode.image_size=32",
         f"paths.data_dir={synthetic_data_dir}", f"output_dir={tmp_path}/run"],
        cwd=project_root, capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "head_grid.png").is_file() and (run / "config.yaml").is_file()
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "infer.log").is_file()
    assert f"output_dir: {run}" in (run / "config.yaml").read_text()
    assert _tree(project_root) == before  # nothing written inside the project
