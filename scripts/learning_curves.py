"""Learning curves of a synthetic-world training run: reads Lightning's CSV metrics, writes PNG curves + JSON numbers.

Usage (the documented learning demonstration, a few minutes on 2 CPU cores):

    OMP_NUM_THREADS=2 python train.py experiment=synthetic paths.log_dir=logs/learn
    python scripts/learning_curves.py logs/learn/train/runs/<run>  # -> <run>/curves/{albedo,shape}.png, numbers.json

``albedo.png``: val/albedo_error (EMA G_A vs true albedo on face texels), val/albedo_error_live,
val/albedo_error_unwrapped (the unwrapped, mirror-completed image texture with its shading — what the official demos
output) and val/albedo_error_target (the de-lit self-distillation target G_A learns from).
``shape.png``: val/shape_error_mm (neutral-mesh per-vertex error of the estimator) and val/landmark_error_px, with
the shape-phase steps shaded. For an estimator pre-training run (``experiment=synthetic_estimator``):
``estimator.png`` and ``estimator_pixels.png``. Plain PIL drawing (matplotlib is not a dependency).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository's package
from albedogan.utils.io import atomic_write_bytes, atomic_write_text

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """Rows of the run's ``metrics.csv`` files (the CSV logger's, one ``version_<k>`` per start: a resumed run adds
    one), in step order; where versions overlap (a resume from an earlier checkpoint) the later one wins."""
    files = sorted(run_dir.rglob("metrics.csv"), key=lambda p: (len(p.parent.name), p.parent.name, str(p)))
    if not files:
        raise FileNotFoundError(f"no metrics.csv under {run_dir}; run with logger=csv")
    rows: list[dict[str, str]] = []
    for path in files:
        with open(path) as f:
            part = [r for r in csv.DictReader(f) if r.get("step")]
        if part:
            first = min(int(r["step"]) for r in part)
            rows = [r for r in rows if int(r["step"]) < first] + part
    return rows


def series(rows: list[dict[str, str]], key: str) -> list[tuple[int, float]]:
    """(step, value) pairs where ``key`` was logged."""
    return [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]


def plot(curves: dict[str, list[tuple[int, float]]], title: str, shade: list[tuple[int, int]] | None = None,
         size: tuple[int, int] = (640, 400)) -> bytes:
    """Line plot of named (step, value) series with axes and a legend; returns PNG bytes."""
    w, h = size
    left, right, top, bottom = 60, 20, 30, 40
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    pts = [p for c in curves.values() for p in c]
    if not pts:
        raise ValueError(f"plot {title!r}: no data")
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = 0.0, max(p[1] for p in pts) * 1.05
    sx = lambda x: left + (x - x0) / max(x1 - x0, 1) * (w - left - right)
    sy = lambda y: h - bottom - (y - y0) / max(y1 - y0, 1e-12) * (h - top - bottom)
    for a, b in shade or []:
        lo, hi = max(a, x0), min(b, x1)
        if lo <= hi:
            d.rectangle([sx(lo), top, sx(hi), h - bottom], fill=(235, 235, 245))
    d.line([left, top, left, h - bottom, w - right, h - bottom], fill="black")
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        d.text((4, sy(y) - 6), f"{y:.3g}", fill="black")
        x = x0 + (x1 - x0) * k / 4
        d.text((sx(x) - 10, h - bottom + 6), f"{int(x)}", fill="black")
    d.text((w // 2 - 40, h - 16), "training step", fill="black")
    d.text((left, 8), title, fill="black")
    for i, (name, c) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(c) > 1:
            d.line([(sx(x), sy(y)) for x, y in c], fill=colour, width=2)
        for x, y in c:
            d.ellipse([sx(x) - 2, sy(y) - 2, sx(x) + 2, sy(y) + 2], fill=colour)
        d.text((w - right - 230, top + 4 + 14 * i), f"-- {name}", fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def phase_spans(rows: list[dict[str, str]], phase_index: float) -> list[tuple[int, int]]:
    """Step ranges where ``train/phase`` equals ``phase_index`` (1 = shape)."""
    steps = sorted({int(r["step"]) for r in rows if r.get("train/phase") and float(r["train/phase"]) == phase_index})
    spans: list[tuple[int, int]] = []
    for s in steps:
        if spans and s - spans[-1][1] <= 10:
            spans[-1] = (spans[-1][0], s)
        else:
            spans.append((s, s))
    return spans


def estimator_curves(rows: list[dict[str, str]], out: Path) -> dict:
    """Curves of an estimator pre-training run: ``estimator.png`` (normalised RMS errors per part) and
    ``estimator_pixels.png`` (landmark px, target albedo error x 100); returns the numbers."""
    parts = {k: series(rows, f"val/{k}_error") for k in ("pose", "cam", "light", "expression")}
    other = {"landmark_error_px": series(rows, "val/landmark_error_px"),
             "albedo_error_target x100": [(x, 100 * y) for x, y in series(rows, "val/albedo_error_target")]}
    atomic_write_bytes(out / "estimator.png", plot(parts, "estimator error per part (RMS, in teacher std units)"))
    atomic_write_bytes(out / "estimator_pixels.png", plot(other, "landmark error (px) / phase-A target error x100"))
    return write_numbers({**parts, **other}, out)


def write_numbers(curves: dict[str, list[tuple[int, float]]], out: Path) -> dict:
    """First / last / min (step, value) of every non-empty curve, written to ``out/numbers.json`` and returned."""
    numbers = {name: {"first": c[0], "last": c[-1], "min": min(c, key=lambda p: p[1])}
               for name, c in curves.items() if c}
    atomic_write_text(out / "numbers.json", json.dumps(numbers, indent=2))
    return numbers


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    rows = read_metrics(args.run_dir)
    out = args.run_dir / "curves"
    if any(r.get("val/pose_error") for r in rows):  # an estimator pre-training run (experiment=synthetic_estimator)
        return estimator_curves(rows, out)
    albedo = {k: series(rows, f"val/{k}") for k in ("albedo_error", "albedo_error_live", "albedo_error_unwrapped",
                                                             "albedo_error_target")}
    shape = {k: series(rows, f"val/{k}") for k in ("shape_error_mm", "landmark_error_px")}
    shade = phase_spans(rows, 1.0)
    atomic_write_bytes(out / "albedo.png", plot(albedo, "albedo error vs ground truth (face texels, [0,1] units)"))
    atomic_write_bytes(out / "shape.png", plot(shape, "shape error (mm) / landmark error (px); shaded = shape phase",
                                               shade))
    return write_numbers({**albedo, **shape}, out)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))  # CLI output
