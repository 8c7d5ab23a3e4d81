"""``torch.compile`` of a module in place, with an eager fallback (the ``model.compile`` option).

:func:`compile_module` compiles a module's ``__call__`` the way ``nn.Module.compile`` does (in place), so the
module object, its parameters and its ``state_dict`` keys stay what they were: no ``_orig_mod.`` wrapper, and
checkpoints written from a compiled run load into an eager one and back. Compilation is lazy (at the first call
with new shapes); if it fails there, the call is repeated eagerly and, when the eager call succeeds, a single
warning line names the module and the compiler's error, and that module stays eager for the rest of the run. An
error the eager call raises too is the caller's error and is raised unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from albedogan.utils.logging import get_logger

__all__ = ["compile_module", "eager", "is_compiled", "uncompile_module"]

log = get_logger(__name__)


class _CompiledOrEager:
    """``module.__call__`` replacement: the compiled call, or the eager ``_call_impl`` once compilation failed."""

    def __init__(self, module: nn.Module, name: str, compiled: Callable[..., Any]) -> None:
        self.name = name
        self.compiled = compiled
        self.eager = module._call_impl
        self.failed: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as err:  # compile-time failure (or a genuine error: the eager call below tells them apart)
            out = self.eager(*args, **kwargs)
            self.failed = _one_line(err)
            log.warning("model.compile: torch.compile of %s failed (%s); running %s eagerly", self.name,
                        self.failed, self.name)
            return out


def _one_line(err: BaseException) -> str:
    """``Outer: Root: first line of the root cause's message`` (dynamo wraps the compiler's own error)."""
    root = err
    for _ in range(8):  # BackendCompilerFailed keeps the compiler's error as inner_exception
        inner = getattr(root, "inner_exception", None) or root.__cause__
        if not isinstance(inner, BaseException) or inner is root:
            break
        root = inner
    first = (str(root).strip().splitlines() or [""])[0][:200]
    chain = type(err).__name__ if root is err else f"{type(err).__name__}: {type(root).__name__}"
    return f"{chain}: {first}"


def compile_module(module: nn.Module, name: str, backend: str = "inductor", **kwargs: Any) -> nn.Module:
    """Compile ``module`` in place (``torch.compile`` of its call) with an eager fallback; returns ``module``.

    Args:
        module: any ``nn.Module``; its identity, parameters and ``state_dict`` keys are unchanged.
        name: how the warning names it (e.g. ``"G_A"``).
        backend: ``torch.compile`` backend (``"inductor"``; ``"aot_eager"`` traces and runs AOTAutograd without
            generating code, for tests).
        **kwargs: further ``torch.compile`` arguments (``mode``, ``dynamic``, ...).
    """
    module._compiled_call_impl = _CompiledOrEager(module, name, torch.compile(module._call_impl, backend=backend,
                                                                              **kwargs))
    return module


def is_compiled(module: nn.Module) -> bool:
    """Whether :func:`compile_module` compiled ``module`` and it has not fallen back to eager."""
    call = getattr(module, "_compiled_call_impl", None)
    return isinstance(call, _CompiledOrEager) and call.failed is None


def uncompile_module(module: nn.Module) -> nn.Module:
    """Undo :func:`compile_module` (the module runs eagerly again); returns ``module``."""
    module._compiled_call_impl = None
    return module


def eager(module: nn.Module) -> Callable[..., Any]:
    """``module``'s eager call (hooks included), bypassing a :func:`compile_module` compilation.

    For passes that differentiate twice (R1, path length: ``autograd.grad(..., create_graph=True)``), which compiled
    graphs do not support."""
    return module._call_impl
