"""Atomic file writes: a reader never sees a half-written file, and a failed write leaves the old file intact."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_with", "OutputWriteError"]


class OutputWriteError(OSError):
    """Raised when an output file cannot be written (read-only folder, disk full, ...)."""


@functools.lru_cache(maxsize=1)
def _default_file_mode() -> int:
    """0o666 minus the process umask (what ``open(path, "w")`` would give); read once, since reading the umask
    means briefly setting it."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: the process exists but belongs to someone else
        return True
    return True


def _temp_prefix(path: Path) -> str:
    """``.<name>.<host>.``: the host keeps writers on other machines of a shared filesystem out of cleanup."""
    host = socket.gethostname().replace(".", "_") or "host"
    return f".{path.name}.{host}."


def _remove_orphaned_temps(path: Path) -> None:
    """Delete ``.<name>.<host>.<pid>.*.tmp`` siblings of ``path`` left by killed writers of this host.

    Temp files of live processes (concurrent writers) and of other hosts are kept; cleanup failures are ignored.
    """
    prefix = _temp_prefix(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid_text = name[len(prefix):].split(".", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it is fsynced and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. Temporary files are named
    ``.<name>.<host>.<pid>.<random>.tmp``; a successful write also removes those of writers on this host that were
    killed (pid gone).

    Args:
        path: destination file. Its parent folder is created if missing.
        mode: ``"wb"`` or ``"w"``.
        encoding: text encoding for ``mode="w"`` (UTF-8 by default).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'wb' and 'w', got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputWriteError(
            f"cannot write {path}: {err.strerror or err}. Choose a writable output folder."
        ) from err
    try:
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), _default_file_mode())  # mkstemp creates 0600; outputs get the usual umask
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _remove_orphaned_temps(path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputWriteError):
            raise OutputWriteError(
                f"cannot write {path}: {err.strerror or err}. Check free disk space and folder permissions."
            ) from err
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer(fh)`` on a binary temp file, then rename it onto ``path`` (e.g. ``torch.save``, ``np.save``)."""
    with atomic_open(path, "wb") as fh:
        writer(fh)
