"""``scripts/pack_device.py`` / ``scripts/unpack_device.py``: the device-carry folder.

The real wheels are cp312 (the GPU box's Python) and cannot be imported here, so the round trip runs on stand-in
wheels with the real layout (an easypytorch3d wheel whose ``pytorch3d/_C.cpython-312-...so`` is large and
incompressible-ish, pure wheels for the rest): packing splits the extension off xz-compressed, the manifest lists
every file, unpacking rebuilds the package trees byte for byte, and a corrupted extension is refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pack_device = _script("pack_device")
unpack_device = _script("unpack_device")

EXT = "pytorch3d/_C.cpython-312-x86_64-linux-gnu.so"


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


@pytest.fixture()
def cache(tmp_path) -> tuple[Path, dict[str, dict[str, bytes]]]:
    cache = tmp_path / "cache"
    cache.mkdir()
    contents: dict[str, dict[str, bytes]] = {}
    ext = os.urandom(1 << 16) + bytes(1 << 18)  # random head + zeros: compressible like a real .so, not trivially
    contents["easypytorch3d"] = {EXT: ext, "pytorch3d/__init__.py": b"__version__ = '0.7.9'\n",
                                 "pytorch3d/structures/__init__.py": b"",
                                 "easypytorch3d-0.7.9.post1.dist-info/METADATA": b"Name: easypytorch3d\n"}
    _wheel(cache / "easypytorch3d-0.7.9.post1-cp312-cp312-manylinux_2_28_x86_64.whl", contents["easypytorch3d"])
    for spec in pack_device.PACKAGES + pack_device.SDIST_ONLY:
        dist, version = spec.split("==")
        if dist == "easypytorch3d":
            continue
        mod = dist.replace("-", "_").split("_")[0]
        files = {f"{mod}/__init__.py": f"VERSION = {version!r}\n".encode(),
                 f"{dist.replace('-', '_')}-{version}.dist-info/METADATA": f"Name: {dist}\n".encode()}
        contents[dist] = files
        _wheel(cache / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl", files)
    _wheel(cache / "unrelated-1.0-py3-none-any.whl", {"unrelated/__init__.py": b""})  # not packed
    return cache, contents


def test_pack_then_unpack_rebuilds_every_package(tmp_path, cache):
    cache_dir, contents = cache
    out = tmp_path / "pack"
    manifest = pack_device.pack(out, cache_dir, download_first=False, preset=6)
    files = manifest["files"]
    assert "pytorch3d/_C.so.xz" in files and "pytorch3d/python.zip" in files
    assert not any("unrelated" in f for f in files)
    assert {f for f in files if f.startswith("wheels/")} == {
        f"wheels/{p.name}" for p in cache_dir.glob("*.whl") if not p.name.startswith(("easypytorch3d", "unrelated"))}
    ext = contents["easypytorch3d"][EXT]
    assert manifest["extension"]["name"] == EXT and manifest["extension"]["size"] == len(ext)
    assert files["pytorch3d/_C.so.xz"]["size"] < len(ext) / 2  # compressed
    with zipfile.ZipFile(out / "pytorch3d" / "python.zip") as z:
        assert EXT not in z.namelist() and "pytorch3d/__init__.py" in z.namelist()
    assert json.loads((out / "manifest.json").read_text()) == manifest

    site = tmp_path / "site"
    tops = unpack_device.unpack(out, site)
    assert "pytorch3d" in tops and "hydra" in tops and "omegaconf" in tops and "antlr4" in tops
    for dist, members in contents.items():
        for name, data in members.items():
            assert (site / name).read_bytes() == data, name
    assert os.access(site / EXT, os.X_OK)
    # on PYTHONPATH (and without site-packages, as on a bare box) the packages import from the target directory
    probe = subprocess.run([sys.executable, "-S", "-c", "import omegaconf, hydra, pytorch3d; "
                            "print(omegaconf.__file__, pytorch3d.__version__)"],
                           env={"PYTHONPATH": str(site)}, capture_output=True, text=True, check=True)
    assert str(site) in probe.stdout and "0.7.9" in probe.stdout


def test_unpack_refuses_a_corrupted_extension(tmp_path, cache):
    cache_dir, _ = cache
    out = tmp_path / "pack"
    manifest = pack_device.pack(out, cache_dir, download_first=False, preset=1)
    manifest["extension"]["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="does not match"):
        unpack_device.unpack(out, tmp_path / "site")
    assert not (tmp_path / "site" / EXT).exists()


def test_missing_wheel_is_named(tmp_path, cache):
    cache_dir, _ = cache
    next(cache_dir.glob("hydra_core-*.whl")).unlink()
    with pytest.raises(SystemExit, match="hydra_core"):
        pack_device.pack(tmp_path / "pack", cache_dir, download_first=False)
