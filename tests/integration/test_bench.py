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
