"""Every lazily re-exported public name resolves (catches renames that would break ``from albedogan.x import Y``)."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["albedogan.nets", "albedogan.assets", "albedogan.datamodules", "albedogan.render", "albedogan.losses",
            "albedogan.models", "albedogan.callbacks",
            "albedogan.flame", "albedogan.eval", "albedogan.utils"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_unknown_name_raises():
    import albedogan.nets

    with pytest.raises(AttributeError, match="NoSuchNet"):
        albedogan.nets.NoSuchNet  # noqa: B018
