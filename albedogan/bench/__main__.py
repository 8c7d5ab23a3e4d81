"""``python -m albedogan.bench [--full] [--device cuda] [--only render,stylegan2] [--json out.json] [--budget-s S]``.

Runs every ``albedogan/bench/bm_*.py`` module's ``run(device, full)`` and prints one table (rich). ``--full`` uses
the paper-size configurations (meant for a GPU); the default uses tiny CPU sizes. ``--budget-s`` bounds the whole
run: ``bm_paper`` (the issue's figures) runs first and times its own rows against the budget, every other module
runs under what is left of it, and a module or row that does not fit is reported, not waited for. The JSON file is
rewritten after every module, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from dataclasses import asdict

import torch

import albedogan.bench as bench_pkg
from albedogan.bench.common import BenchResult, BenchTimeout, remaining_budget, set_budget, time_limit
from albedogan.utils.io import atomic_write_text


def _modules(only: set[str] | None) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__) if m.name.startswith("bm_"))
    names = sorted(names, key=lambda n: n != "bm_paper")  # the paper figures first (stable for the rest)
    return [n for n in names if only is None or n[3:] in only]


def _write_json(path: str | None, rows: list[tuple[str, BenchResult]]) -> None:
    if path:
        atomic_write_text(path, json.dumps([{"bench": b, **asdict(r), "throughput": r.throughput} for b, r in rows],
                                           indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="paper-size configurations (GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names, e.g. render,flame")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-time budget of the whole run in seconds (rows / modules that do not fit are "
                             "reported as skipped or timed out)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.stderr.write(f"albedogan.bench: --device {args.device} needs a CUDA GPU, but torch {torch.__version__} "
                         "sees none (torch.cuda.is_available() is False); use a GPU machine or --device cpu\n")
        return 2
    only = set(args.only.split(",")) if args.only else None
    set_budget(args.budget_s)
    rows: list[tuple[str, BenchResult]] = []
    failures = 0
    for name in _modules(only):
        left = remaining_budget()
        if left is not None and left < 10:
            rows.append((name[3:], BenchResult(f"{name} SKIPPED: time budget spent", float("nan"))))
            continue
        try:
            module = importlib.import_module(f"albedogan.bench.{name}")
            with time_limit(None if name == "bm_paper" else left):  # bm_paper times its own rows
                results = module.run(device, args.full)
        except BenchTimeout as err:
            rows.append((name[3:], BenchResult(f"{name} TIMEOUT: {err} (budget)", float("nan"))))
            continue
        except Exception as err:  # report and continue with the other benchmarks
            failures += 1
            sys.stderr.write(f"{name}: failed: {type(err).__name__}: {err}\n")
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows += [(name[3:], r) for r in results]
        _write_json(args.json, rows)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"albedogan benchmarks on {device} ({'full' if args.full else 'tiny CPU'} sizes, "
                        f"torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for col in ("bench", "what", "ms/call", "throughput", "extra"):
        table.add_column(col)
    for bench, r in rows:
        extra = ", ".join(f"{k}={v:.3g}" for k, v in r.extra.items())
        table.add_row(bench, r.name, f"{r.seconds * 1e3:.2f}", f"{r.throughput:.2f} {r.unit}/s", extra)
    Console(width=160).print(table)
    _write_json(args.json, rows)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
