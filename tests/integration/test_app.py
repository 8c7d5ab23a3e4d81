"""The demo's handlers without a browser: same mode functions as infer.py, per-visitor folders, bad uploads give a
message, the Gradio page builds (the real-browser run is ``test_app_browser.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from albedogan.inference.app import DemoApp, build_ui, latent_directions
from albedogan.inference.pipeline import build_pipeline
from albedogan.models.estimator import build_embedded_estimator
from tests.helpers.inference_world import tiny_teacher, write_tiny_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(synthetic_head_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    ckpt = write_tiny_checkpoint(root / "tiny.safetensors", seed=1)
    est = build_embedded_estimator(n_shape=300, n_exp=50, input_size=32, shape_network=False)
    pipeline = build_pipeline(tiny_teacher(synthetic_head_model), synthetic_head_model, est, ckpt,
                              render_size=32, uv_resolution=32)
    fit = {"stages": [{"name": "landmarks", "iters": 10, "photometric": False,
                       "lr": {"cam": 0.01, "global_pose": 0.01, "expression": 0.03}}]}
    return DemoApp(pipeline, root / "out", turntable_frames=4, turntable_resolution=32, n_directions=2,
                   landmarks="dlib68", fit=fit)


def test_latent_directions_are_orthogonal_and_scaled(app):
    d = latent_directions(app.pipeline, n_samples=128, k=2)
    assert d.shape == (2, 16)
    unit = d / d.norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.T, torch.eye(2), atol=1e-4)
    assert d.norm(dim=1)[0] >= d.norm(dim=1)[1] > 0  # first direction has the largest spread
    assert len(app.direction_files) == 2 and all(p.is_file() for p in app.direction_files)


def test_generate_writes_into_the_visitor_folder(app):
    a = app.generate(3, 0.7, 0.0, 0, 0.0, session="visitor-a")
    b = app.generate(3, 0.7, 2.0, 1, 1.5, session="visitor-b")
    for view, who in ((a, "visitor-a"), (b, "visitor-b")):
        assert f"/sessions/{who}/" in view.glb and Path(view.glb).is_file()
        assert Path(view.albedo).is_file() and Path(view.picture).is_file() and Path(view.turntable).is_file()
        assert {Path(f).name for f in view.files} >= {"mesh.obj", "mesh.mtl", "mesh_albedo.png", "mesh.glb"}
        assert all(who in f for f in view.files)
    # same seed, but the expression and the latent edit change the mesh and the albedo
    pa, pb = np.load(Path(a.glb).with_name("params.npz")), np.load(Path(b.glb).with_name("params.npz"))
    assert np.abs(pa["w"] - pb["w"]).max() > 1e-3
    assert not np.allclose(np.asarray(Image.open(a.albedo)), np.asarray(Image.open(b.albedo)))
    # a repeat of visitor a's request is a new folder, never an overwrite
    again = app.generate(3, 0.7, 0.0, 0, 0.0, session="visitor-a")
    assert again.glb != a.glb and Path(a.glb).is_file()


def test_expression_offset_moves_the_mesh(app):
    a = app.generate(5, 0.7, 0.0, 0, 0.0, session="e")
    b = app.generate(5, 0.7, 3.0, 0, 0.0, session="e")
    va = np.array([ln.split()[1:] for ln in Path(a.glb).with_name("mesh.obj").read_text().splitlines()
                   if ln.startswith("v ")], float)
    vb = np.array([ln.split()[1:] for ln in Path(b.glb).with_name("mesh.obj").read_text().splitlines()
                   if ln.startswith("v ")], float)
    assert np.abs(va - vb).max() > 1e-4


def test_reconstruct_photo_and_bad_uploads(app, tmp_path):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((160, 160)).save(photo)
    view = app.reconstruct(str(photo), session="c")
    assert view.glb and Path(view.glb).is_file() and Path(view.picture).name == "overlay.png", view.message
    assert "face(s)" in view.message
    summary = json.loads((Path(view.glb).parents[1] / "summary.json").read_text())
    assert summary["fit_stages"] == ["landmarks"]  # the app fits with the configured fitter, built once
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    bad = app.reconstruct(str(junk), session="c")
    assert bad.glb is None and "could not be used" in bad.message and "not_an_image" in bad.message
    blank = tmp_path / "blank.png"
    Image.new("RGB", (160, 160), (128, 128, 128)).save(blank)
    assert "no_face" in app.reconstruct(str(blank), session="c").message
    assert "Upload a photo" in app.reconstruct(None, session="c").message


def test_page_builds(app):
    import gradio as gr

    demo = build_ui(app)
    assert isinstance(demo, gr.Blocks)
    kinds = {type(b).__name__ for b in demo.blocks.values()}
    assert {"Model3D", "Slider", "Image", "File", "Button"} <= kinds
