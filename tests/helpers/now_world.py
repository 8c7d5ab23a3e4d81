"""A NoW-format evaluation tree built from the head model's template (scan in mm) and a real photo."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data as skdata

from albedogan.inference.export import export_obj


def write_template_scan(folder: Path, stem: str, head) -> None:
    """``<folder>/<stem>.obj`` = the template in mm and ``<folder>/<stem>_picked_points.pp`` its 7 NoW landmarks."""
    neutral = head.flame.neutral(head.zero_params(1))
    scan = neutral.vertices[0].double().numpy() * 1000.0
    lmk = neutral.landmarks7[0].double().numpy() * 1000.0
    export_obj(folder / f"{stem}.obj", scan, head.faces.numpy())
    pts = "".join(f' <point x="{x}" y="{y}" z="{z}" active="1" name="{i}"/>\n' for i, (x, y, z) in enumerate(lmk))
    (folder / f"{stem}_picked_points.pp").write_text(f"<!DOCTYPE PickedPoints>\n<PickedPoints>\n{pts}</PickedPoints>\n")


def now_world(root: Path, head) -> Path:
    """A NoW-format tree: one subject whose scan is the template (mm), a real face photo and a blank one."""
    data = root / "now"
    (data / "scans" / "S1").mkdir(parents=True)
    write_template_scan(data / "scans" / "S1", "scan", head)
    (data / "scans_lmks_onlypp" / "S1").mkdir(parents=True)
    pp = "scan_picked_points.pp"
    (data / "scans" / "S1" / pp).rename(data / "scans_lmks_onlypp" / "S1" / pp)
    (data / "iphone_pictures" / "S1" / "selfie").mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(data / "iphone_pictures" / "S1" / "selfie" / "IMG_1.jpg")
    Image.new("RGB", (64, 64), "white").save(data / "iphone_pictures" / "S1" / "selfie" / "IMG_2.jpg")
    (data / "imagepathsvalidation.txt").write_text("S1/selfie/IMG_1.jpg\nS1/selfie/IMG_2.jpg\n")
    return data
