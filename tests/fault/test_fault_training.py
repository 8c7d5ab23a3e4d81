"""Fault injection on training: ``python train.py experiment=debug`` SIGKILLed while it writes a checkpoint, then
resumed from ``last.ckpt``.

Default suite (~10 s unloaded): the kill lands *inside* a checkpoint write (a wrapper around ``train.py`` makes the
5th checkpoint ``torch.save`` -- ``step_0000003.ckpt`` -- stop half-way and announce itself; the test kills the
process then). Checked: the
destination never holds the partial file, ``last.ckpt`` is the complete step-2 state (loads with
``weights_only=True``, validates, equals ``step_0000002.ckpt``), and the run resumed from it ends with exactly the
weights of an uninterrupted run. Slow: an unpatched run killed as soon as its first checkpoint appears, every
checkpoint left behind validates, and the resumed run completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from albedogan.assets.locate import AssetFormatError
from albedogan.models.checkpoint import validate_training_checkpoint

ROOT = Path(__file__).resolve().parents[2]

# 4 steps = albedo (warm-up), albedo, albedo, shape: the resumed half holds both phases, lazy R1 and path length
FAST = ["trainer.max_steps=4", "trainer.limit_val_batches=0", "callbacks.image_grid=null",
        "callbacks.model_checkpoint.every_n_train_steps=1", "callbacks.rich_progress_bar=null"]

# Runs train.py unchanged, except that the N-th checkpoint ``torch.save`` writes half of its bytes to the file it was
# given (the temp file of the atomic write), announces "MIDWRITE", and then hangs until it is killed.
_KILL_MID_WRITE = textwrap.dedent(
    """
    import io, os, runpy, sys, time
    import torch

    kill_at = int(os.environ["ALBEDOGAN_TEST_KILL_AT_WRITE"])
    count = [0]
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "state_dict" in obj and hasattr(f, "fileno"):
            count[0] += 1
            if count[0] == kill_at:
                buf = io.BytesIO()
                real_save(obj, buf, *args, **kwargs)
                f.write(buf.getvalue()[: buf.tell() // 2])
                f.flush()
                print("MIDWRITE", flush=True)
                time.sleep(300)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
    sys.argv = ["train.py", *sys.argv[1:]]
    runpy.run_path("train.py", run_name="__main__")
    """
)


def _env(tmp_dir: Path, **extra: str) -> dict[str, str]:
    # TMPDIR: where Lightning's default (fsspec) IO would put its temp files; AtomicCheckpointIO must not use it
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1",
            "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_dir), **extra}


def _cli(data_dir: Path, log_dir: Path, *extra: str) -> list[str]:
    return ["experiment=debug", f"paths.log_dir={log_dir}", f"paths.data_dir={data_dir}", *FAST, *extra]


def _wait_for_line(proc: subprocess.Popen, token: str, timeout: float, log: Path) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if token in line:
            return line
        if not line and proc.poll() is not None:
            raise AssertionError(f"train.py exited with {proc.returncode} before {token!r}:\n"
                                 f"{log.read_text()[-3000:]}")
    raise AssertionError(f"train.py did not print {token!r} within {timeout} s")


def _sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def _run_in_process(data_dir: Path, out: Path, *extra: str) -> Path:
    from albedogan.entry import run_train

    overrides = ["experiment=debug", f"paths.root_dir={ROOT}", f"paths.data_dir={data_dir}",
                 f"paths.output_dir={out}", *FAST, *extra]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        run_train(compose(config_name="train", overrides=overrides))
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture
def one_thread():
    """In-process runs use one torch thread, like the OMP_NUM_THREADS=1 subprocess: float reductions then match
    bit for bit (2 threads vs 1 already changes the weights by ~1e-7 after one step)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _checkpoint_dir(log_dir: Path) -> Path:
    (ckpt_dir,) = log_dir.rglob("checkpoints")
    return ckpt_dir


def _kill_mid_checkpoint_write(data_dir: Path, tmp_path: Path) -> Path:
    """Run train.py until it is half-way through writing ``step_0000003.ckpt``, SIGKILL it, check what is left on
    disk, and return the run's checkpoint folder."""
    log_dir, sys_tmp = tmp_path / "killed", tmp_path / "sys_tmp"
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_MID_WRITE, *_cli(data_dir, log_dir)], cwd=ROOT,
            env=_env(sys_tmp, ALBEDOGAN_TEST_KILL_AT_WRITE="5"), stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            _wait_for_line(proc, "MIDWRITE", timeout=240, log=stderr)
        finally:
            if proc.poll() is None:
                _sigkill(proc)
    # write order with a checkpoint every step: step_1, last(1), step_2, last(2), step_3 <- killed half-way
    ckpt_dir = _checkpoint_dir(log_dir)
    assert sorted(p.name for p in ckpt_dir.glob("*.ckpt")) == ["last.ckpt", "step_0000001.ckpt", "step_0000002.ckpt"]
    (temp,) = (p for p in ckpt_dir.iterdir() if not p.name.endswith(".ckpt"))  # the killed write's temp file,
    assert "step_0000003.ckpt" in temp.name, temp.name  # next to its target, never at the destination name
    assert temp.stat().st_size > 0 and not list(sys_tmp.iterdir())  # nothing went through $TMPDIR
    with pytest.raises(AssetFormatError, match="not a readable PyTorch checkpoint"):  # it really is truncated
        validate_training_checkpoint(temp)

    last = ckpt_dir / "last.ckpt"
    raw = torch.load(last, map_location="cpu", weights_only=True)  # the plain safe load works
    assert raw["global_step"] == 2
    info = validate_training_checkpoint(last)
    assert info.global_step == 2 and info.num_optimizers == 3
    step2 = validate_training_checkpoint(ckpt_dir / "step_0000002.ckpt").trained_state()
    survived = info.trained_state()
    assert survived.keys() == step2.keys() and len(survived) > 50
    assert all(torch.equal(survived[k], step2[k]) for k in survived)
    return ckpt_dir


def test_sigkill_mid_checkpoint_write_then_exact_resume(synthetic_data_dir, tmp_path, one_thread) -> None:
    ckpt_dir = _kill_mid_checkpoint_write(synthetic_data_dir, tmp_path)
    last = ckpt_dir / "last.ckpt"
    survived = validate_training_checkpoint(last).trained_state()
    straight = validate_training_checkpoint(_run_in_process(synthetic_data_dir, tmp_path / "straight"))
    resumed = validate_training_checkpoint(_run_in_process(synthetic_data_dir, tmp_path / "resumed",
                                                           f"ckpt_path={last}"))
    assert straight.global_step == resumed.global_step == 4
    a, b = straight.trained_state(), resumed.trained_state()
    assert a.keys() == b.keys() == survived.keys()
    assert any(not torch.equal(survived[k], a[k]) for k in a)  # steps 3-4 did train after the kill point
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs between the uninterrupted and the killed-then-resumed run"


@pytest.mark.slow
def test_sigkill_at_first_checkpoint_then_resume_completes(synthetic_data_dir, tmp_path, one_thread) -> None:
    """No patching: the kill lands wherever the run is once ``last.ckpt`` first appears."""
    log_dir = tmp_path / "killed"
    more = ["trainer.max_steps=12"]
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "train.py", *_cli(synthetic_data_dir, log_dir, *more)], cwd=ROOT,
                                env=_env(tmp_path / "sys_tmp"), stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + 240
        while not list(log_dir.rglob("last.ckpt")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, f"train.py ended before the kill:\n{stderr.read_text()[-3000:]}"
        _sigkill(proc)
    ckpt_dir = _checkpoint_dir(log_dir)
    steps = [validate_training_checkpoint(p).global_step for p in sorted(ckpt_dir.glob("*.ckpt"))]
    assert 1 <= min(steps) and max(steps) < 12  # every file left behind is complete and the run was cut short
    last = validate_training_checkpoint(ckpt_dir / "last.ckpt")
    resumed = validate_training_checkpoint(_run_in_process(synthetic_data_dir, tmp_path / "resumed", *more,
                                                           f"ckpt_path={last.path}"))
    assert resumed.global_step == 12
    assert any(not torch.equal(v, resumed.trained_state()[k]) for k, v in last.trained_state().items())


def _fake_checkpoint(**changes) -> dict:
    state = {"G.w": torch.ones(2, 2), "G_ema.w": torch.ones(2, 2), "D.w": torch.zeros(3), "estimator.b": torch.ones(1)}
    ckpt = {"epoch": 0, "global_step": 5, "state_dict": state, "loops": {}, "optimizer_states": [{}, {}],
            "hyper_parameters": {"lr_g": 1e-3}}
    return {**ckpt, **changes}


@pytest.mark.parametrize("case, match", [
    ("truncated", "not a readable PyTorch checkpoint"),
    ("nan", r"non-finite weights in \['G.w'\]"),
    ("rebuilt", r"rebuilt from the config: \['teacher.x'\]"),
    ("no_step", r"missing entries \['global_step'\]"),
    ("negative_step", "global_step = -1"),
    ("no_generator", r"no weights for \['G_ema'\]"),
])
def test_validator_rejects_damaged_checkpoints(tmp_path, case, match) -> None:
    good = tmp_path / "good.ckpt"
    torch.save(_fake_checkpoint(), good)
    info = validate_training_checkpoint(good)
    assert info.global_step == 5 and info.num_optimizers == 2 and set(info.trained_state()) == set(
        _fake_checkpoint()["state_dict"])
    bad = tmp_path / "bad.ckpt"
    state = _fake_checkpoint()["state_dict"]
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        ckpt = {"nan": lambda: _fake_checkpoint(state_dict={**state, "G.w": torch.full((2, 2), float("nan"))}),
                "rebuilt": lambda: _fake_checkpoint(state_dict={**state, "teacher.x": torch.ones(1)}),
                "no_step": lambda: {k: v for k, v in _fake_checkpoint().items() if k != "global_step"},
                "negative_step": lambda: _fake_checkpoint(global_step=-1),
                "no_generator": lambda: _fake_checkpoint(state_dict={k: v for k, v in state.items()
                                                                     if not k.startswith("G_ema.")}),
                }[case]()
        torch.save(ckpt, bad)
    with pytest.raises(AssetFormatError, match=match) as err:
        validate_training_checkpoint(bad)
    assert str(bad) in str(err.value)


def test_atomic_checkpoint_io_ignores_tmpdir_and_keeps_old_file(tmp_path, monkeypatch) -> None:
    """Lightning's IO stages in $TMPDIR (not atomic across filesystems); ours stages next to the target."""
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    from albedogan.models.checkpoint import AtomicCheckpointIO

    target = tmp_path / "ckpts" / "last.ckpt"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no_such_tmpdir"))
    with pytest.raises(FileNotFoundError):  # proof that Lightning's own IO goes through $TMPDIR
        TorchCheckpointIO().save_checkpoint({"w": torch.ones(1)}, target)
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.arange(4.0)}, target)
    monkeypatch.setattr(torch, "save", lambda obj, f: (f.write(b"PK\x03\x04partial"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        io.save_checkpoint({"w": torch.zeros(4)}, target)
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # old file intact, temp removed
    torch.testing.assert_close(io.load_checkpoint(target)["w"], torch.arange(4.0))
