"""Small shared utilities: atomic I/O, shape checks, rank-zero logging."""

from albedogan.utils.io import OutputWriteError, atomic_open, atomic_write_bytes, atomic_write_text, atomic_write_with
from albedogan.utils.logging import get_logger
from albedogan.utils.shapes import assert_shape

__all__ = [
    "OutputWriteError",
    "assert_shape",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "get_logger",
]
