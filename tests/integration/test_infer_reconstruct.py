"""``mode=reconstruct`` on real and broken photos: every bad-input case reported, the batch never stops."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image
from skimage import data

from albedogan.inference.pipeline import build_pipeline
from albedogan.inference.reconstruct import run_reconstruct
from albedogan.models.estimator import build_embedded_estimator
from tests.helpers.inference_world import CLI_OVERRIDES, tiny_teacher

pytestmark = pytest.mark.integration


def _face(size: int = 160) -> np.ndarray:
    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.BILINEAR))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """One file per case; value = expected (status, reason)."""
    d = tmp_path_factory.mktemp("photos")
    face = _face()
    cases = {}
    Image.fromarray(face).save(d / "ok.png")
    cases["ok.png"] = ("ok", "")
    Image.fromarray(face).convert("L").save(d / "gray.png")
    cases["gray.png"] = ("ok", "")
    Image.fromarray(face).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    cases["cmyk.jpg"] = ("ok", "")
    # stored rotated by 90° with EXIF orientation 6 ("rotate 90° CW to view"): upright only if EXIF is honoured
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(face, k=1))).save(d / "exif.jpg", exif=exif, quality=95)
    cases["exif.jpg"] = ("ok", "")
    big = np.asarray(Image.fromarray(face).resize((900, 900), Image.BILINEAR))
    Image.fromarray(big).save(d / "large.jpg", quality=80)
    cases["large.jpg"] = ("ok", "")  # above max_side: downscaled, still reconstructed
    Image.new("RGB", (1200, 1100), (90, 90, 90)).save(d / "huge.png")
    cases["huge.png"] = ("skipped", "too_large")  # header pixels above max_pixels: refused before decoding
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases["truncated.png"] = ("skipped", "truncated")
    (d / "notes.jpg").write_text("not an image")
    cases["notes.jpg"] = ("skipped", "not_an_image")
    Image.new("RGB", (160, 160), (128, 128, 128)).save(d / "blank.png")
    cases["blank.png"] = ("skipped", "no_face")
    canvas = np.full((192, 192, 3), 128, np.uint8)
    canvas[40:136, 40:136] = _face(96)  # the face box is ~16×19 px
    Image.fromarray(canvas).save(d / "tiny.png")
    cases["tiny.png"] = ("skipped", "tiny_face")
    return d, cases


@pytest.fixture(scope="module")
def pipeline(synthetic_head_model):
    est = build_embedded_estimator(n_shape=300, n_exp=50, input_size=32, shape_network=False)
    return build_pipeline(tiny_teacher(synthetic_head_model), synthetic_head_model, est, None,
                          allow_no_checkpoint=True, render_size=32, uv_resolution=32)


def test_every_bad_input_case_is_reported(pipeline, photos, tmp_path, synthetic_head_model):
    folder, cases = photos
    status = run_reconstruct(pipeline, str(folder), tmp_path, detector="yunet", min_face_size=24,
                             max_pixels=1_000_000, max_side=512, crop_size=64, glb=True)
    assert status == 1  # some inputs were skipped
    summary = json.loads((tmp_path / "summary.json").read_text())
    got = {p["input"].rsplit("/", 1)[-1]: (p["status"], p["reason"]) for p in summary["inputs"]}
    assert got == cases
    for name, (st, _) in cases.items():
        stem = name.rsplit(".", 1)[0]
        if st == "ok":
            out = tmp_path / stem
            for f in ("mesh.obj", "mesh.glb", "mesh_albedo.png", "params.npz", "overlay.png", "crop.png"):
                assert (out / f).is_file(), (name, f)
            mesh = trimesh.load(out / "mesh.glb", process=False, force="mesh")
            assert len(mesh.faces) == synthetic_head_model.faces.shape[0]
            assert str(np.load(out / "params.npz")["source"]).endswith(name)
        else:
            assert not (tmp_path / stem).exists()


def test_unwrapped_albedo_takes_the_photo_colours(pipeline, photos, tmp_path):
    """The albedo of a face photo is skin-coloured (R > G > B on the face), not a fixed colour: a saturated tint of
    the photo shows up in the albedo."""
    folder, _ = photos
    tinted = _face().astype(float)
    tinted[..., 2] *= 0.4  # strongly less blue
    Image.fromarray(tinted.astype(np.uint8)).save(tmp_path / "tinted.png")
    assert run_reconstruct(pipeline, [str(folder / "ok.png"), str(tmp_path / "tinted.png")], tmp_path / "o",
                           detector="yunet", crop_size=64, glb=False) == 0
    a = np.asarray(Image.open(tmp_path / "o" / "ok" / "mesh_albedo.png"), dtype=float)
    b = np.asarray(Image.open(tmp_path / "o" / "tinted" / "mesh_albedo.png"), dtype=float)
    ratio_a = a[..., 2].mean() / a[..., 0].mean()
    ratio_b = b[..., 2].mean() / b[..., 0].mean()
    assert ratio_b < 0.75 * ratio_a


def test_cli_reconstruct_exit_status(project_root, synthetic_data_dir, photos, tmp_path):
    folder, _ = photos
    run = lambda inp, out: subprocess.run(  # noqa: E731
        [sys.executable, "infer.py", "mode=reconstruct", f"input='{inp}'", f"paths.data_dir={synthetic_data_dir}",
         "checkpoint=null", "allow_no_checkpoint=true", "estimator=embedded", "estimator.input_size=32",
         "estimator.shape_network=false", *CLI_OVERRIDES, "mode.detector=yunet", "mode.crop_size=64",
         "mode.glb=false", f"output_dir={out}", f"hydra.run.dir={out}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=300,
    )
    out = run(f"{folder}/[bo][lk]*.png", tmp_path / "a")  # glob: blank.png + ok.png
    assert out.returncode == 1, out.stderr[-3000:]
    assert "no_face" in out.stderr and "1/2 ok" in out.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert sorted(p["status"] for p in summary["inputs"]) == ["ok", "skipped"]
