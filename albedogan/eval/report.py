"""Evaluation reports: one record written as JSON, a Markdown table and a PNG bar plot, all atomically.

A report records *what* was measured (flat ``{metric name: float}``), *with what* (the resolved config as plain
JSON-able data) and *on which files* (sha256 of every checkpoint / asset file), so a number can always be traced
back to the exact weights that produced it.

Example::

    report = EvaluationReport.create(
        metrics={"FID_sface": 12.3, "identity_cos_mean": 0.71},
        config=OmegaConf.to_container(cfg, resolve=True),
        checkpoints={"albedo": "checkpoints/albedo_synthetic.ckpt"},
    )
    paths = write_report(report, "outputs/eval")   # eval_report.json / .md / .png
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from albedogan.utils.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "EvaluationReport",
    "ReportPaths",
    "file_sha256",
    "render_bar_plot",
    "report_to_markdown",
    "write_report",
]

REPORT_VERSION = 1


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (constant memory for multi-GB checkpoints).

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot hash {path}: no such file (check the checkpoint path in the config)")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Plain JSON data from configs/metrics (numpy/torch scalars, Paths, tuples); NaN/inf become strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class EvaluationReport:
    """One evaluation run.

    Attributes:
        metrics: metric name -> value (floats; names carry their feature space, e.g. ``FID_sface``).
        config: the resolved run config as JSON-able data.
        checkpoints: role -> {"path": str, "sha256": hex digest, "bytes": size}.
        created: ISO-8601 UTC time stamp.
        notes: free text (e.g. which fallbacks ran).
    """

    metrics: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = ""
    notes: str = ""

    @classmethod
    def create(
        cls,
        metrics: Mapping[str, Any],
        config: Mapping[str, Any] | None = None,
        checkpoints: Mapping[str, str | os.PathLike | None] | None = None,
        notes: str = "",
    ) -> "EvaluationReport":
        """Build a report, hashing every checkpoint file (``None`` entries are recorded as absent).

        Raises:
            ValueError: a metric value is not a real number (names it).
            FileNotFoundError: a checkpoint path does not exist.
        """
        clean: dict[str, float] = {}
        for name, value in metrics.items():
            try:
                clean[str(name)] = float(value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"metric {name!r}: expected a number, got {value!r}") from err
        files: dict[str, dict[str, Any]] = {}
        for role, path in (checkpoints or {}).items():
            if path in (None, ""):
                files[str(role)] = {"path": None, "sha256": None, "bytes": None}
                continue
            p = Path(path)
            files[str(role)] = {"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return cls(clean, _jsonable(dict(config or {})), files, stamp, notes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (non-finite metric values become the strings ``"nan"`` / ``"inf"``)."""
        return {
            "version": REPORT_VERSION,
            "created": self.created,
            "metrics": _jsonable(self.metrics),
            "checkpoints": _jsonable(self.checkpoints),
            "config": self.config,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvaluationReport":
        """Inverse of :meth:`to_dict` (raises ValueError on another report version)."""
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"unsupported evaluation report version {data.get('version')!r}; expected {REPORT_VERSION}")
        metrics = {k: float(v) for k, v in data["metrics"].items()}
        return cls(metrics, dict(data.get("config", {})), dict(data.get("checkpoints", {})), data.get("created", ""), data.get("notes", ""))


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def report_to_markdown(report: EvaluationReport) -> str:
    """Markdown: a ``| metric | value |`` table, then a ``| checkpoint | sha256 | bytes | path |`` table."""
    lines = ["# Evaluation report", "", f"Created {report.created} (UTC).", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in sorted(report.metrics.items())]
    if report.checkpoints:
        lines += ["", "| checkpoint | sha256 | bytes | path |", "|---|---|---:|---|"]
        for role, info in sorted(report.checkpoints.items()):
            lines.append(f"| {role} | {info.get('sha256') or '-'} | {info.get('bytes') or '-'} | {info.get('path') or '-'} |")
    if report.notes:
        lines += ["", report.notes]
    return "\n".join(lines) + "\n"


def render_bar_plot(metrics: Mapping[str, float], width: int = 640, bar_height: int = 22) -> np.ndarray:
    """Horizontal bar chart of the metrics (bars scaled per chart to the largest |value|; values printed).

    Returns:
        (H, W, 3) uint8 RGB image, H = (len(metrics) + 1) * ``bar_height``.
    """
    from PIL import Image, ImageDraw

    names = sorted(metrics)
    height = (len(names) + 1) * bar_height
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    finite = [abs(metrics[n]) for n in names if math.isfinite(metrics[n])]
    scale = max(finite) if finite and max(finite) > 0 else 1.0
    label_w, value_w = width * 2 // 5, 90
    bar_w = width - label_w - value_w - 10
    for i, name in enumerate(names):
        y = (i + 1) * bar_height - bar_height // 2
        value = metrics[name]
        draw.text((4, y), name[:48], fill=(0, 0, 0))
        if math.isfinite(value):
            length = int(round(bar_w * abs(value) / scale))
            color = (70, 110, 200) if value >= 0 else (200, 90, 70)
            draw.rectangle([label_w, y, label_w + max(length, 1), y + bar_height - 6], fill=color)
        draw.text((width - value_w, y), _fmt(value), fill=(0, 0, 0))
    return np.asarray(img, dtype=np.uint8)


@dataclass(frozen=True)
class ReportPaths:
    """The files written by :func:`write_report`."""

    json: Path
    markdown: Path
    plot: Path


def write_report(report: EvaluationReport, out_dir: str | os.PathLike, stem: str = "eval_report") -> ReportPaths:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into ``out_dir`` (created), each atomically.

    Raises:
        OutputWriteError: the folder is not writable or the disk is full (from :mod:`albedogan.utils.io`).
    """
    import io

    from PIL import Image

    out = Path(out_dir)
    paths = ReportPaths(out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png")
    atomic_write_text(paths.json, json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    atomic_write_text(paths.markdown, report_to_markdown(report))
    buf = io.BytesIO()
    Image.fromarray(render_bar_plot(report.metrics)).save(buf, format="PNG")
    atomic_write_bytes(paths.plot, buf.getvalue())
    return paths
