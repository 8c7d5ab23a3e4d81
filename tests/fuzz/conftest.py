"""Hypothesis profiles for the fuzz tests: few, derandomised examples, no example database in the repo.

Select with ``--hypothesis-profile=fuzz-long`` for a longer local run (examples x10).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=timedelta(seconds=20),  # per example; hangs are caught separately by a hard alarm
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
settings.register_profile("fuzz", max_examples=20, **_COMMON)
settings.register_profile("fuzz-long", max_examples=200, **_COMMON)
settings.load_profile("fuzz")


@pytest.fixture(scope="session")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    """One valid file's bytes per fuzz target, built once per session with the project's writers."""
    from tests.fuzz.targets import TARGETS

    folder: Path = tmp_path_factory.mktemp("fuzz_valid")
    out: dict[str, bytes] = {}
    for target in TARGETS:
        path = folder / f"valid_{target.name}{target.suffix}"
        target.build(path)
        out[target.name] = path.read_bytes()
    return out
