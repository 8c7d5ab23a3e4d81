"""``python infer.py mode=video`` at tiny size: MP4 and GIF files readable with the configured frame counts."""

from __future__ import annotations

import subprocess
import sys

import imageio.v2 as iio2
import imageio.v3 as iio
import pytest

from tests.helpers.inference_world import CLI_OVERRIDES, write_tiny_checkpoint

pytestmark = pytest.mark.integration


def test_cli_video(project_root, synthetic_data_dir, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "g.safetensors")
    out = subprocess.run(
        [sys.executable, "infer.py", "mode=video", f"paths.data_dir={synthetic_data_dir}", f"checkpoint={ckpt}",
         "estimator=ground_truth", *CLI_OVERRIDES, "mode.kinds=[turntable,interpolation]", "mode.seeds=[5,6]",
         "mode.frames=4", "mode.resolution=32", "mode.path=turntable", f"output_dir={tmp_path}/out",
         f"hydra.run.dir={tmp_path}/hydra"],
        cwd=project_root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    d = tmp_path / "out"
    for stem, n in (("turntable_seed0005", 4), ("turntable_seed0006", 4), ("interpolation_5_6", 4)):
        assert iio.imread(d / f"{stem}.gif", index=None).shape[0] == n
        reader = iio2.get_reader(d / f"{stem}.mp4", format="FFMPEG")
        try:
            assert reader.count_frames() == n
            assert reader.get_meta_data()["fps"] == pytest.approx(24)
        finally:
            reader.close()
    assert not (d / "expression_seed0005.gif").exists()  # only the requested kinds
