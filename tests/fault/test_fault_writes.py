"""Fault injection on outputs: SIGKILL mid-write leaves the old file or none (never a partial one) and no stray
temp files after the next successful write; disk-full and unwritable folders raise one clear OutputWriteError."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from albedogan.inference.export import export_glb, export_obj, save_png
from albedogan.utils.io import OutputWriteError, atomic_write_bytes, atomic_write_with

ROOT = Path(__file__).resolve().parents[2]

_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from albedogan.utils.io import atomic_write_with

    def writer(fh):
        for i in range(400):                 # ~40 MB in 100 kB chunks, slowly: the kill lands mid-write
            fh.write(b"v 0.1 0.2 0.3\\n" * 7000)
            fh.flush()
            if i == 2:
                print("WRITING", flush=True)
            time.sleep(0.02)

    atomic_write_with(sys.argv[1], writer)
    print("DONE", flush=True)
    """
)

_EXPORT_LOOP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from albedogan.inference.export import export_obj
    rng = np.random.default_rng(0)
    v = rng.random((60000, 3)); f = rng.integers(0, 60000, (120000, 3))
    print("READY", flush=True)
    while True:
        export_obj(sys.argv[1], v, f)
    """
)


def _spawn(code: str, target: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, token: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if token in line:
            return
        if proc.poll() is not None:
            raise AssertionError(f"writer exited with {proc.returncode} before printing {token!r}")
    raise AssertionError(f"writer did not print {token!r} within {timeout} s")


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("had_old_file", [False, True])
def test_sigkill_mid_write_leaves_old_or_no_file(tmp_path, had_old_file) -> None:
    target = tmp_path / "mesh.obj"
    if had_old_file:
        atomic_write_bytes(target, b"old content\n")
    proc = _spawn(_SLOW_WRITER, target)
    _wait_for(proc, "WRITING")
    _kill(proc)
    if had_old_file:
        assert target.read_bytes() == b"old content\n"
    else:
        assert not target.exists()
    assert len(_temps(tmp_path)) == 1  # the killed writer's temp file, never at the destination name
    atomic_write_bytes(target, b"new content\n")  # a later successful write cleans the orphan up
    assert target.read_bytes() == b"new content\n"
    assert _temps(tmp_path) == []


def test_sigkill_during_repeated_obj_export_never_leaves_partial_file(tmp_path) -> None:
    target = tmp_path / "face.obj"
    proc = _spawn(_EXPORT_LOOP, target)
    _wait_for(proc, "READY")
    deadline = time.monotonic() + 60
    while not target.exists() and time.monotonic() < deadline:  # at least one complete export exists
        time.sleep(0.05)
    time.sleep(0.3)  # now the loop is (most likely) in the middle of the next export
    _kill(proc)
    lines = target.read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == 60000
    assert sum(line.startswith("f ") for line in lines) == 120000
    export_obj(target, np.zeros((3, 3)), np.array([[0, 1, 2]]))
    assert _temps(tmp_path) == []


def test_disk_full_gives_output_write_error_and_keeps_old_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "albedo.png"
    save_png(target, np.zeros((3, 4, 4)))
    old = target.read_bytes()

    def full_disk(fh) -> None:
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputWriteError, match=r"albedo\.png.*(No space left|disk space)"):
        atomic_write_with(target, full_disk)
    assert target.read_bytes() == old and _temps(tmp_path) == []

    # ENOSPC surfacing at fsync (how a real full disk often reports delayed allocation) through a real exporter
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    for export in (
        lambda p: export_obj(p, np.random.rand(4, 3), np.array([[0, 1, 2], [1, 2, 3]])),
        lambda p: export_glb(p, np.random.rand(4, 3), np.array([[0, 1, 2], [1, 2, 3]])),
        lambda p: save_png(p, np.ones((3, 4, 4))),
    ):
        with pytest.raises(OutputWriteError, match="No space left"):
            export(target)
        assert target.read_bytes() == old
    assert _temps(tmp_path) == []


def test_unwritable_output_folder_gives_output_write_error(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(OutputWriteError, match="not_a_folder"):
        export_obj(blocker / "face.obj", np.random.rand(3, 3), np.array([[0, 1, 2]]))

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if os.geteuid() != 0:  # real permissions (root bypasses them)
        readonly.chmod(0o500)
    else:  # as root, make temp-file creation fail exactly as EACCES/EROFS would
        def denied(*args, **kwargs):
            raise PermissionError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    try:
        with pytest.raises(OutputWriteError, match=r"readonly.*writable output folder"):
            save_png(readonly / "albedo.png", np.zeros((3, 4, 4)))
    finally:
        readonly.chmod(0o700)
    assert list(readonly.iterdir()) == []
