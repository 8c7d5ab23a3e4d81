"""Video helpers: orbit paths, rotations, encoders (MP4/GIF read back by imageio), and run_video kinds."""

from __future__ import annotations

import math

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from albedogan.inference.generate import run_generate
from albedogan.inference.video import orbit_angles, rotation_matrices, run_video, write_video
from tests.helpers.inference_world import tiny_pipeline, write_tiny_checkpoint


def _count(path) -> int:
    if path.suffix == ".gif":
        return iio.imread(path, index=None).shape[0]
    reader = iio2.get_reader(path, format="FFMPEG")
    try:
        return reader.count_frames()
    finally:
        reader.close()


def test_orbit_paths():
    sweep = orbit_angles(8, "sweep", azimuth_max=60, elevation_max=10)
    assert sweep.shape == (8, 2)
    assert sweep[:, 0].abs().max().item() == pytest.approx(math.radians(60))
    assert sweep[0].abs().max() == 0  # starts frontal
    turn = orbit_angles(4, "turntable", elevation_max=5)
    assert torch.allclose(turn[:, 0], torch.tensor([0, 0.5, 1.0, 1.5], dtype=torch.float64) * math.pi)
    with pytest.raises(ValueError, match="sweep"):
        orbit_angles(4, "spiral")


def test_rotation_matrices_are_rotations_and_turn_the_nose():
    r = rotation_matrices(torch.tensor([[0.3, -0.2], [math.pi / 2, 0.0]], dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(r @ r.transpose(1, 2), eye.expand(2, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(2, dtype=torch.float64))
    nose = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # +Z out of the face
    assert torch.allclose(r[1] @ nose, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)


def test_write_video_round_trip(tmp_path):
    frames = np.zeros((5, 16, 24, 3), np.uint8)
    frames[:, :, :12, 0] = 255  # left half red
    frames[:, 0, 16:, 1] = np.arange(5)[:, None] * 40  # frames differ (GIF encoders merge identical frames)
    for suffix in ("mp4", "gif"):
        path = write_video(tmp_path / f"v.{suffix}", frames, fps=10)
        assert _count(path) == 5
        first = iio.imread(path, index=0)[..., :3].astype(int)
        assert first.shape == (16, 24, 3)
        assert first[:, :8, 0].mean() > 200 and first[:, 16:, 0].mean() < 50  # colours stay put (RGB, no swap)
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        write_video(tmp_path / "v.avi", frames)


def test_run_video_kinds_and_frame_counts(synthetic_head_model, tmp_path):
    pipe = tiny_pipeline(synthetic_head_model, write_tiny_checkpoint(tmp_path / "g.safetensors"))
    out = run_video(pipe, tmp_path / "v", kinds=["turntable", "interpolation", "expression"], seeds=[0, 1, 2],
                    frames=3, resolution=32, formats=["gif"], batch_size=4)
    assert _count(out / "turntable_seed0002.gif") == 3
    assert _count(out / "expression_seed0000.gif") == 3
    interp = iio.imread(out / "interpolation_0_1_2.gif", index=None)
    assert interp.shape[:3] == (6, 32, 96)  # 3 frames × 2 segments; teacher | render | albedo tiles
    # turntables of a reconstructed / generated face folder
    gen = run_generate(pipe, tmp_path / "g", seeds=[4], glb=False, sheet_cell=32)
    out2 = run_video(pipe, tmp_path / "v2", kinds=["turntable"], faces=[str(gen / "seed0004")], frames=2,
                     resolution=32, formats=["mp4"])
    assert _count(out2 / "turntable_seed0004.mp4") == 2
    with pytest.raises(ValueError, match="unknown kinds"):
        run_video(pipe, tmp_path / "v3", kinds=["dolly"])


def test_face_folders_carry_the_mouth_interior_into_turntables(synthetic_head_model, tmp_path):
    """A reconstructed face's params.npz holds the photo's mouth colour (``mouth_interior``); load_face returns it
    (None for generated faces) and render_orbit paints the inside of the head with it and nothing else."""
    from albedogan.inference.video import load_face, render_orbit
    from albedogan.render import FaceRenderer, directional_sh_coeffs

    pipe = tiny_pipeline(synthetic_head_model, write_tiny_checkpoint(tmp_path / "g.safetensors"))
    gen = run_generate(pipe, tmp_path / "g", seeds=[4], glb=False, sheet_cell=32) / "seed0004"
    head = synthetic_head_model
    params, albedo, interior = load_face(gen, head.n_shape, head.n_exp)
    assert interior is None and albedo.shape[:2] == (1, 3)
    arrays = dict(np.load(gen / "params.npz"))
    np.savez(gen / "params.npz", **arrays, mouth_interior=np.array([0.0, 0.0, 1.0], np.float32))
    _, _, interior = load_face(gen, head.n_shape, head.n_exp)
    torch.testing.assert_close(interior, torch.tensor([[0.0, 0.0, 1.0]]))
    # the mouth wide open: the camera sees into the head between the lips
    jaw = params.jaw_pose.clone()
    jaw[:, 0] = 0.5
    from albedogan.structures import FlameParams

    opened = FlameParams(params.shape, params.expression, params.global_pose, params.neck_pose, jaw, params.eye_pose)
    verts = head(opened).vertices[0]
    renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, 64)
    light = directional_sh_coeffs(torch.tensor([[0.0, 0.0, 1.0]]), 0.6, 0.4)
    angles = torch.zeros(1, 2)
    plain = render_orbit(renderer, verts, albedo, angles, light).astype(int)
    blue = render_orbit(renderer, verts, albedo, angles, light, interior=interior).astype(int)
    changed = (plain != blue).any(-1)[0]
    assert changed.sum() > 0  # the mouth cavity
    assert (blue[0][changed] == [0, 0, 255]).all()


def test_expression_sweep_paints_the_open_mouth_with_mouth_interior(synthetic_head_model, tmp_path):
    """Generated faces carry no mouth colour: the pipeline's mouth_interior (the top-level ``mouth_interior`` key)
    gives the open mouth of the expression sweep a cavity colour (null leaves the back of the head's texture
    there); a bad colour is one clear error."""
    from albedogan.inference.pipeline import FacePipeline

    pipe = tiny_pipeline(synthetic_head_model, write_tiny_checkpoint(tmp_path / "g.safetensors"))
    kw = dict(kinds=["expression"], seeds=[0], frames=4, resolution=64, formats=["gif"], jaw_max=0.6,
              expression_max=0.0)
    pipe.mouth_interior = None
    plain = iio.imread(run_video(pipe, tmp_path / "a", **kw) / "expression_seed0000.gif", index=None)[..., :3]
    pipe.mouth_interior = torch.tensor([[0.0, 1.0, 0.0]])
    green = iio.imread(run_video(pipe, tmp_path / "b", **kw) / "expression_seed0000.gif", index=None)[..., :3]

    def cavity(video: np.ndarray) -> np.ndarray:  # pure green pixels per frame (GIF palettes shift other colours)
        video = video.astype(int)
        return ((video[..., 1] > 200) & (video[..., [0, 2]] < 60).all(-1)).sum((1, 2))

    assert cavity(green)[1] > max(4, 5 * cavity(green)[0])  # the jaw opens most at the sweep's peak (frame 1)
    assert cavity(plain).sum() == 0
    with pytest.raises(ValueError, match="mouth_interior"):
        FacePipeline(pipe.teacher, synthetic_head_model, render_size=32, uv_resolution=32, mouth_interior=[2.0, 0.0])
