"""Resolve asset files and fail with one clear message naming the file, where it goes and where to get it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

__all__ = ["AssetSpec", "MissingAssetError", "AssetFormatError", "require_file", "require_files"]


class MissingAssetError(FileNotFoundError):
    """One or more required asset files do not exist."""


class AssetFormatError(ValueError):
    """An asset file exists but is not in the expected format (wrong keys, shapes, dtypes, corrupt bytes)."""


@dataclass(frozen=True)
class AssetSpec:
    """What an asset is, for error messages.

    Attributes:
        name: human name, e.g. ``"FLAME 2020 model (generic_model.pkl)"``.
        config_key: the config entry that sets its path, e.g. ``"flame.model_path"``.
        obtain: where a user gets it (licence page, project page).
    """

    name: str
    config_key: str
    obtain: str


def _describe(path: Path, spec: AssetSpec) -> str:
    return f"  - {spec.name}: expected at {path} (set `{spec.config_key}=...`); obtain it from {spec.obtain}"


def require_files(items: Iterable[tuple[str | os.PathLike | None, AssetSpec]]) -> list[Path]:
    """Check that every asset exists; raise one :class:`MissingAssetError` listing all missing ones."""
    resolved: list[Path] = []
    missing: list[str] = []
    for raw, spec in items:
        path = Path(os.path.expanduser(str(raw))) if raw not in (None, "") else Path("<unset>")
        resolved.append(path)
        if not path.is_file():
            missing.append(_describe(path, spec))
    if missing:
        raise MissingAssetError("missing asset file(s):\n" + "\n".join(missing))
    return resolved


def require_file(path: str | os.PathLike | None, spec: AssetSpec) -> Path:
    """Single-file form of :func:`require_files`."""
    return require_files([(path, spec)])[0]
