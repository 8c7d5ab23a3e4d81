"""Rebuild the packages packed by ``scripts/pack_device.py`` into a directory for ``PYTHONPATH`` (standard library
only, so it runs on a bare box before anything is installed).

``python3 scripts/unpack_device.py .device /tmp/site && export PYTHONPATH=/tmp/site:$PWD``

Every wheel of ``<pack>/wheels`` is unzipped into the target (what ``pip install --target`` does for these
pure-Python wheels), easypytorch3d's Python files from ``<pack>/pytorch3d/python.zip`` likewise, and its compiled
extension is decompressed from ``<pack>/pytorch3d/_C.so.xz`` to its place in the package; its size and sha256 must
match the manifest's, or nothing is left half-written (the extension is written to a temporary name and renamed).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import sys
import zipfile
from pathlib import Path


def unpack(pack: Path, target: Path) -> list[str]:
    """Unpack ``pack`` into ``target``; returns the top-level names written (packages and dist-info folders)."""
    manifest = json.loads((pack / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        path = pack / name
        if not path.is_file() or path.stat().st_size != entry["size"]:
            raise SystemExit(f"unpack_device: {path} is missing or has the wrong size; pack again")
    target.mkdir(parents=True, exist_ok=True)
    tops: set[str] = set()
    archives = sorted((pack / "wheels").glob("*.whl")) + [pack / "pytorch3d" / "python.zip"]
    for archive in archives:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise SystemExit(f"unpack_device: unsafe path {member!r} in {archive.name}")
            z.extractall(target)
            tops.update(m.split("/")[0] for m in z.namelist())
    ext = manifest["extension"]
    data = lzma.decompress((pack / "pytorch3d" / "_C.so.xz").read_bytes())
    if len(data) != ext["size"] or hashlib.sha256(data).hexdigest() != ext["sha256"]:
        raise SystemExit("unpack_device: the decompressed pytorch3d extension does not match the manifest")
    dest = target / ext["name"]
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o755)
    tmp.replace(dest)
    return sorted(tops)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: unpack_device.py PACK_DIR TARGET_DIR\n")
        return 2
    tops = unpack(Path(args[0]), Path(args[1]))
    print(f"unpacked into {args[1]}: {', '.join(t for t in tops if not t.endswith('.dist-info'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
