"""Property: for every file loader, arbitrary bytes, truncations and single-byte mutations of a VALID file either
load or raise ONE of the project's clear error types naming the file -- never another exception type, a hang, or
code execution. (Interpreter crashes are checked in a subprocess by test_fuzz_subprocess.py.)"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import CLEAR_ERRORS, TARGETS, malicious_bytes

HANG_SECONDS = 30


def example_scale() -> int:
    """Multiplier for every target's example count: 1 under the ``fuzz`` profile, 10 under ``fuzz-long``."""
    return max(1, settings.default.max_examples // 20)


@contextlib.contextmanager
def _hang_alarm(seconds: int):
    def _raise(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"loader hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_load(target, path: Path) -> str:
    """Load ``path``; return "ok" or the clear error's class name; fail the test on anything else."""
    try:
        with _hang_alarm(HANG_SECONDS):
            target.load(path)
    except CLEAR_ERRORS as err:
        message = str(err)
        assert path.name in message, f"{target.name}: {type(err).__name__} does not name the file: {message[:300]}"
        return type(err).__name__
    except Exception as err:  # noqa: BLE001 - the property under test
        pytest.fail(f"{target.name}: leaked {type(err).__module__}.{type(err).__name__}: {str(err)[:300]}")
    return "ok"


def corruptions(valid: bytes) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, prefixes of ``valid``, or ``valid`` with one byte replaced (biased to headers/trailers)."""
    n = len(valid)
    position = st.one_of(st.integers(0, min(n, 2048) - 1), st.integers(max(0, n - 4096), n - 1), st.integers(0, n - 1))

    def mutate(args: tuple[int, int]) -> bytes:
        pos, value = args
        value = value if value != valid[pos] else (value + 1) % 256
        return valid[:pos] + bytes([value]) + valid[pos + 1 :]

    return st.one_of(
        st.binary(max_size=512),
        st.integers(0, n - 1).map(lambda k: valid[:k]),
        st.tuples(position, st.integers(0, 255)).map(mutate),
    )


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_corrupted_file_gives_clear_error(target, valid_files, tmp_path) -> None:
    valid = valid_files[target.name]
    assert check_load(target, _write(tmp_path, target, valid)) == "ok"  # the untouched file loads
    outcomes: list[str] = []

    @settings(max_examples=target.examples * example_scale())
    @given(data=corruptions(valid))
    def run(data: bytes) -> None:
        outcomes.append(check_load(target, _write(tmp_path, target, data)))

    run()
    assert len(outcomes) >= target.examples // 2, f"{target.name}: only {len(outcomes)} examples ran"
    if os.environ.get("ALBEDOGAN_FUZZ_VERBOSE"):
        print(target.name, sorted(collections.Counter(outcomes).items()))
    assert any(o != "ok" for o in outcomes), f"{target.name}: no corruption was ever rejected ({outcomes})"


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_empty_and_missing_files(target, tmp_path) -> None:
    assert check_load(target, _write(tmp_path, target, b"")) != "ok"
    missing = tmp_path / f"absent{target.suffix}"
    assert check_load(target, missing) != "ok"


_CONTAINER = {".pkl": "pickle", ".npy": "npy", ".pt": "torch", ".pth": "torch", ".tar": "torch", ".ckpt": "torch"}


@pytest.mark.parametrize("target", [t for t in TARGETS if t.suffix in _CONTAINER], ids=lambda t: t.name)
@pytest.mark.parametrize("kind", ["pickle", "torch", "npy"])
def test_pickled_code_is_never_executed(target, kind, tmp_path) -> None:
    marker = tmp_path / "PWNED"
    path = _write(tmp_path, target, malicious_bytes(kind, marker))
    assert check_load(target, path) != "ok"
    assert not marker.exists(), f"{target.name} executed pickled code from a {kind} container"


def _write(folder: Path, target, data: bytes) -> Path:
    path = folder / f"f{uuid.uuid4().hex[:8]}{target.suffix}"
    path.write_bytes(data)
    return path
