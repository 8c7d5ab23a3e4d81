"""The command line a person uses: config validation before anything is built, one-line errors, help sections.

Torch-free: ``infer.py`` / ``train.py`` import this before Hydra composes, so a mistake is reported within a second.
"""

from __future__ import annotations

__all__ = ["runtime_errors"]


def runtime_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that are a user's to fix (a file, a folder): printed as one message, exit status 1."""
    from albedogan.assets.locate import AssetFormatError, MissingAssetError
    from albedogan.assets.safe_pickle import UnsafePickleError
    from albedogan.utils.io import OutputWriteError

    return (MissingAssetError, AssetFormatError, UnsafePickleError, OutputWriteError, PermissionError,
            FileNotFoundError, NotADirectoryError, IsADirectoryError)
