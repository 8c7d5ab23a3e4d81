"""Atomic writes: a failed write leaves the previous file intact and no temporary files behind."""

from __future__ import annotations

import errno

import pytest

from albedogan.utils.io import OutputWriteError, atomic_open, atomic_write_text, atomic_write_with


def test_atomic_write_replaces(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_midway_keeps_old_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def writer(fh):
        fh.write(b"partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write_with(target, writer)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_disk_full_becomes_clear_error(tmp_path):
    target = tmp_path / "a.bin"

    def writer(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputWriteError, match="a.bin.*No space left"):
        atomic_write_with(target, writer)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_bad_mode():
    with pytest.raises(ValueError, match="modes"):
        with atomic_open("x", "a"):
            pass


def test_written_files_get_umask_permissions(tmp_path):
    import os

    from albedogan.utils.io import _default_file_mode

    atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask == _default_file_mode()
