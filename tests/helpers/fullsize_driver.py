"""Run ``scripts/fullsize_dry_run.py`` from a test: ``FULLSIZE_OUT`` keeps the outputs (default: under the test's temp
dir), ``FULLSIZE_ASSETS`` reuses assets written by an earlier run."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fullsize_dry_run.py"


def run_fullsize_driver(tmp_path: Path, *args: str) -> tuple[Path, dict]:
    """``fullsize_dry_run.main(["--out", out, *args, ("--assets", ...)])`` -> (out folder, its results)."""
    spec = importlib.util.spec_from_file_location("fullsize_dry_run", SCRIPT)
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    out = Path(os.environ.get("FULLSIZE_OUT", tmp_path / "fullsize"))
    assets = os.environ.get("FULLSIZE_ASSETS")
    return out, driver.main(["--out", str(out), *args] + (["--assets", assets] if assets else []))
