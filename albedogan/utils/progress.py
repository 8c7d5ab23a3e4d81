"""Progress bars for multi-item work (photos, seeds, videos): rich, with the time of the last item; silent when
stderr is not a terminal (logs, CI, pipes)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

__all__ = ["progress_bar"]


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool | None = None) -> Iterator[Callable[..., None]]:
    """Yield ``advance(label="", n=1)``: moves the bar by ``n`` items and shows ``label`` with the seconds the
    items took (``2.31 s/item``).

    Args:
        description: what is being done (``generate``, ``reconstruct``, ``video``).
        total: number of items.
        enabled: force on/off (default: on when stderr is a terminal).
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda label="", n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[item]}"), console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total, item="")
        last = time.perf_counter()

        def advance(label: str = "", n: int = 1) -> None:
            nonlocal last
            now = time.perf_counter()
            per = (now - last) / max(n, 1)
            last = now
            progress.update(task, advance=n, item=f"{label} {per:.2f} s/item".strip())

        yield advance
