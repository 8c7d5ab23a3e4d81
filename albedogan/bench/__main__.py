"""``python -m albedogan.bench [--full] [--device cuda] [--only render,stylegan2] [--json out.json]``.

Runs every ``albedogan/bench/bm_*.py`` module's ``run(device, full)`` and prints one table (rich). ``--full`` uses
the paper-size configurations (meant for a GPU); the default uses tiny CPU sizes.
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
from albedogan.bench.common import BenchResult
from albedogan.utils.io import atomic_write_text


def _modules(only: set[str] | None) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__) if m.name.startswith("bm_"))
    return [n for n in names if only is None or n[3:] in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="paper-size configurations (GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names, e.g. render,flame")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.stderr.write(f"albedogan.bench: --device {args.device} needs a CUDA GPU, but torch {torch.__version__} "
                         "sees none (torch.cuda.is_available() is False); use a GPU machine or --device cpu\n")
        return 2
    only = set(args.only.split(",")) if args.only else None
    rows: list[tuple[str, BenchResult]] = []
    failures = 0
    for name in _modules(only):
        module = importlib.import_module(f"albedogan.bench.{name}")
        try:
            results = module.run(device, args.full)
        except Exception as err:  # report and continue with the other benchmarks
            failures += 1
            sys.stderr.write(f"{name}: failed: {type(err).__name__}: {err}\n")
            continue
        rows += [(name[3:], r) for r in results]

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
    if args.json:
        atomic_write_text(args.json, json.dumps([{"bench": b, **asdict(r), "throughput": r.throughput}
                                                 for b, r in rows], indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
