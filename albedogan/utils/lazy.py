"""Lazy package re-exports: ``from albedogan.nets import Generator`` without importing every network module."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for a package whose public names live in submodules.

    Args:
        package: the package's ``__name__``.
        table: ``{public name: submodule}``, e.g. ``{"Generator": "stylegan2"}``.
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{table[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__
