"""Every listed command-line mistake of ``infer.py`` / ``train.py``: one line naming the key, the value, what is
allowed and an example; exit status 2 (1 for a file the user must fix); no traceback; before any model is built."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
ENV.pop("HYDRA_FULL_ERROR", None)
#: a config mistake is caught before torch/model code: 0.5-0.7 s of CPU time per command (wall time ≈ that on an
#: idle machine). The bound is on the child's CPU time, so a loaded test machine does not make it flaky, and stays
#: far below the 10-40 s a model build costs.
FAST_S = 2.5


def _run(root: Path, script: str, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``script`` and return (result, CPU seconds the child used)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, script, *args], cwd=root, capture_output=True, text=True, timeout=300,
                         env=env or ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _one_line(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr and "Error executing job" not in out.stderr, out.stderr
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error"), lines[0]
    return lines[0]


@pytest.mark.parametrize("args, expect", [
    (["mode=reconstruct"], ["input is not set", "input=photos/"]),
    (["mode=generate", "mode.seeds=5"], ["mode.seeds=5", "list of seeds", "mode.seeds=[5]"]),
    (["mode=generate", "mode.n=abc"], ["mode.n=abc", "integer", "e.g. mode.n="]),
    (["mode=generate", "+mode.nn=3"], ["mode.nn", "no key 'nn'", "did you mean n?", "e.g. mode.n=3"]),
    (["mode=generate", "mode.nn=3"], ["mode.nn=3", "no key 'nn'", "did you mean n?"]),
    (["mode=video", "mode.seeds=[3]"], ["mode.seeds=[3]", "at least two seeds", "e.g. mode.seeds=[3,4]"]),
    (["mode=video", "mode.resolution=255"], ["mode.resolution=255", "even"]),
    (["mode=reconstruct", "input=docs", "mode.max_pixels=-3"], ["mode.max_pixels=-3", ">= 1",
                                                                 "e.g. mode.max_pixels="]),
    (["mode=bogus"], ["mode=bogus", "no such mode", "generate"]),
    (["trainer=cpu"], ["trainer=cpu", "infer.py has no 'trainer' group"]),
    (["mode=generate", "+foo=1"], ["+foo=1", "infer.py has no key 'foo'"]),
    (["mode=generate", "+teacher.fooo=2"], ["teacher (ProceduralTeacher) has no key 'fooo'"]),
    (["mode=generate", "teacher.image_size=abc"], ["teacher.image_size=abc", "must be an integer"]),
    (["mode=generate", "checkpoint=missing.safetensors"], ["checkpoint=missing.safetensors", "file not found",
                                                           "allow_no_checkpoint=true"]),
    (["mode=generate", "checkpoint=null"], ["checkpoint=null", "allow_no_checkpoint=true"]),
    (["mode=generate", "device=gpu"], ["device=gpu", "cuda:N"]),
    (["mode=reconstruct", "input='/no/such/földer ä/*.jpg'"], ["input=/no/such/földer ä/*.jpg", "matches no file"]),
    (["mode=reconstruct", "input=/no/such/folder"], ["input=/no/such/folder", "no such file or folder"]),
    # Hydra's grammar needs quotes around non-ASCII characters: the line shows how
    (["mode=reconstruct", "input=/no/such/földer"], ["cannot parse", "input=/no/such/földer", "quote"]),
    (["mode=reconstruct", "input=my", "photos/x.jpg"], ["cannot parse", "photos/x.jpg", "quote"]),
])
def test_infer_mistake_is_one_line_status_2(project_root, tmp_path, args, expect):
    out, cpu_s = _run(project_root, "infer.py", *args, f"output_dir={tmp_path}/out")
    line = _one_line(out)
    assert out.returncode == 2, out.stderr
    for text in expect:
        assert text in line, (text, line)
    assert cpu_s < FAST_S, cpu_s
    assert not (tmp_path / "out").exists()  # nothing written for a refused command line


def test_random_bytes_named_ckpt_is_not_a_checkpoint(project_root, tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(os.urandom(4096).replace(b"P", b"Q").replace(b"\x80", b"\x81"))
    out, cpu_s = _run(project_root, "infer.py", "mode=generate", f"checkpoint={bad}", f"output_dir={tmp_path}/o")
    line = _one_line(out)
    assert out.returncode == 1 and "x.ckpt" in line and "not a checkpoint file" in line
    assert "weights_only" not in out.stderr and cpu_s < FAST_S


def test_zip_that_is_not_a_checkpoint_never_suggests_unsafe_loading(project_root, tmp_path):
    """Passes the first-bytes sniff (a zip), fails in torch.load(weights_only=True): still one line, status 1."""
    import zipfile

    bad = tmp_path / "y.ckpt"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("hello.txt", "not a checkpoint")
    out, _ = _run(project_root, "infer.py", "mode=generate", f"checkpoint={bad}", f"output_dir={tmp_path}/o")
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error")]
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert "y.ckpt" in lines[0] and "not a checkpoint file" in lines[0]
    assert "weights_only" not in out.stderr and "Traceback" not in out.stderr


def test_unwritable_output_dir_is_status_1(project_root, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        out, cpu_s = _run(project_root, "infer.py", "mode=head_grid", f"output_dir={locked}/run")
        line = _one_line(out)
        assert out.returncode == 1 and "cannot write" in line and "output_dir=" in line and cpu_s < FAST_S
    finally:
        locked.chmod(0o700)


def test_runtime_error_is_one_message_and_debug_shows_traceback(project_root, tmp_path):
    """A missing official asset (found only while building) → one message, status 1; debug=true → traceback."""
    args = ["mode=head_grid", "flame=flame2020", f"paths.assets_dir={tmp_path}/none", f"output_dir={tmp_path}/o"]
    out, _ = _run(project_root, "infer.py", *args)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("error (MissingAssetError): missing asset file(s):"), out.stderr
    assert "Traceback" not in out.stderr and "Error executing job" not in out.stderr
    assert "generic_model.pkl" in out.stderr
    dbg, _ = _run(project_root, "infer.py", *args, "debug=true")
    assert dbg.returncode == 1 and "Traceback" in dbg.stderr and "MissingAssetError" in dbg.stderr


def test_train_mistakes(project_root, tmp_path):
    out, cpu_s = _run(project_root, "train.py", "experiment=nope", f"output_dir={tmp_path}/o")
    assert out.returncode == 2 and "experiment=nope: no such experiment" in _one_line(out) and cpu_s < FAST_S
    out, _ = _run(project_root, "train.py", "seed=abc", f"output_dir={tmp_path}/o")
    assert out.returncode == 2 and "seed=abc: must be an integer" in _one_line(out)
    out, _ = _run(project_root, "train.py", "ckpt_path=/no/last.ckpt", f"output_dir={tmp_path}/o")
    assert out.returncode == 2 and "ckpt_path=/no/last.ckpt: file not found" in _one_line(out)
    out, _ = _run(project_root, "train.py", "+model.lr_gg=1", f"output_dir={tmp_path}/o")
    assert out.returncode == 2 and "no key 'lr_gg'" in _one_line(out)
    out, _ = _run(project_root, "train.py", "mode=generate", f"output_dir={tmp_path}/o")
    assert out.returncode == 2 and "train.py has no 'mode' group" in _one_line(out)
    assert not (tmp_path / "o").exists()


def test_several_mistakes_one_line_each(project_root, tmp_path):
    out, _ = _run(project_root, "infer.py", "mode=generate", "mode.n=abc", "mode.batch_size=0", "seed=-1",
                  f"output_dir={tmp_path}/o")
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 3, out.stderr
    assert {ln.split(":")[1].strip().split("=")[0] for ln in lines} == {"mode.batch_size", "mode.n", "seed"}


def test_output_dir_that_cannot_be_created_is_status_1(project_root, tmp_path):
    """Even root cannot make a folder in /proc; a file in the way is named too."""
    if not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    out, cpu_s = _run(project_root, "infer.py", "mode=head_grid", "output_dir=/proc/albedogan_out")
    line = _one_line(out)
    assert out.returncode == 1 and "output_dir=/proc/albedogan_out: cannot create or write it" in line
    assert cpu_s < FAST_S
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out, _ = _run(project_root, "infer.py", "mode=head_grid", f"output_dir={blocker}/run")
    assert out.returncode == 1 and "is a file, not a folder" in _one_line(out)
