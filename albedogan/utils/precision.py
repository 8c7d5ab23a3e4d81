"""fp32 islands inside ``bf16-mixed`` (autocast) training.

Under ``trainer.precision=bf16-mixed`` Lightning runs the step inside ``torch.autocast``: every matmul and
convolution then runs in bfloat16. That is right for the StyleGAN2 convolutions and wrong for the numerically
sensitive parts (the mapping network, style / demodulation coefficients, R1, the FLAME layer, the target builder and
the renderer: under CPU autocast FLAME loses 0.19 mm mean vertex error and the SH shading 1.1%). Those run in
*fp32 islands*: :func:`float32_region` switches autocast off for the device types that have it on, and
:func:`fp32_island` does that for a whole function after casting its reduced-precision (float16 / bfloat16)
tensor arguments -- also the tensors inside dataclass records such as ``FlameParams`` -- to float32. float64
inputs are left as they are (the renderer is exact in float64). Outside autocast and with float32 inputs both are
no-ops.
"""

from __future__ import annotations

import dataclasses
import functools
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, TypeVar

import torch

__all__ = ["AUTOCAST_DEVICE_TYPES", "autocast_enabled", "float32_region", "fp32_island", "to_float32"]

AUTOCAST_DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda")
"""Device types whose autocast state the islands switch off."""

_REDUCED = (torch.float16, torch.bfloat16)

F = TypeVar("F", bound=Callable[..., Any])


def autocast_enabled() -> bool:
    """Whether autocast is on for any of :data:`AUTOCAST_DEVICE_TYPES`."""
    return any(torch.is_autocast_enabled(d) for d in AUTOCAST_DEVICE_TYPES)


@contextmanager
def float32_region() -> Iterator[None]:
    """Switch autocast off (for the device types that have it on) inside the block; a no-op otherwise."""
    with ExitStack() as stack:
        for device_type in AUTOCAST_DEVICE_TYPES:
            if torch.is_autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def to_float32(value: Any) -> Any:
    """float16 / bfloat16 tensors -> float32; dataclass records, tuples, lists and dicts are mapped through; anything
    else (float32 / float64 / integer tensors, numbers, modules) is returned unchanged (same object)."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in _REDUCED else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = to_float32(old)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, (tuple, list)):
        items = [to_float32(v) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    return value


def fp32_island(fn: F) -> F:
    """Decorator: run ``fn`` with autocast off and its reduced-precision tensor arguments cast to float32.

    The cast applies to positional and keyword arguments (see :func:`to_float32`); results come back in whatever
    dtype ``fn`` computes (float32 for float32 inputs).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(to_float32(a) for a in args)
        kwargs = {k: to_float32(v) for k, v in kwargs.items()}
        if not autocast_enabled():
            return fn(*args, **kwargs)
        with float32_region():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
