"""The benchmark runner works end to end (on the cheapest benchmark) and every bm_* module exposes ``run``."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import albedogan.bench
from albedogan.bench.__main__ import main

pytestmark = pytest.mark.integration


def test_every_benchmark_module_has_run():
    names = [m.name for m in pkgutil.iter_modules(albedogan.bench.__path__) if m.name.startswith("bm_")]
    assert {"bm_flame", "bm_render", "bm_stylegan2"} <= set(names)
    for name in names:
        assert callable(importlib.import_module(f"albedogan.bench.{name}").run)


def test_runner_writes_json(tmp_path):
    assert main(["--only", "flame", "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())
    assert rows and all(r["bench"] == "flame" and r["seconds"] > 0 for r in rows)


def test_time_limit_interrupts_and_is_not_swallowed():
    """A row's time limit raises BenchTimeout even through code that catches Exception, and restores an outer one."""
    import time

    from albedogan.bench.common import BenchTimeout, remaining_budget, set_budget, time_limit

    def swallowing() -> None:
        try:
            time.sleep(5)
        except Exception:  # what e.g. the compile fallback does: must not hide the timeout
            pass

    start = time.monotonic()
    with pytest.raises(BenchTimeout):
        with time_limit(0.2):
            swallowing()
    assert time.monotonic() - start < 3
    with time_limit(10):
        with time_limit(0.05):
            pass
        time.sleep(0.1)  # the inner limit is gone, the outer one still pending (no raise)
    set_budget(100)
    assert 90 < remaining_budget() <= 100
    set_budget(None)
    assert remaining_budget() is None


def test_paper_rows_fail_and_skip_without_stopping_the_others(monkeypatch):
    """bm_paper: a failing row and a timed-out row are reported, later rows still run, a spent budget skips."""
    import time

    import torch

    from albedogan.bench import bm_paper
    from albedogan.bench.common import set_budget

    def ok():
        return 0.5, {"x": 1.0}

    def bad():
        raise RuntimeError("broken\nsecond line")

    def slow():
        time.sleep(5)
        return 1.0, {}

    rows = [bm_paper.Row("a", 0, 2, "img", bad), bm_paper.Row("b", 0, 2, "img", slow),
            bm_paper.Row("c", 1, 2, "img", ok)]
    monkeypatch.setattr(bm_paper, "rows", lambda device, full: rows)
    monkeypatch.setitem(bm_paper.ROW_TIMEOUT_S, "tiny", 0.3)
    out = bm_paper.run(torch.device("cpu"), full=False)
    names = [r.name for r in out]
    assert names[0] == "a FAILED: RuntimeError: broken" and names[1].startswith("b TIMEOUT")
    assert names[2] == "c" and out[2].seconds == 0.5 and out[2].throughput == 4.0
    set_budget(5)  # less than a row needs
    try:
        out = bm_paper.run(torch.device("cpu"), full=False)
    finally:
        set_budget(None)
    assert all("SKIPPED" in r.name for r in out[:3])
