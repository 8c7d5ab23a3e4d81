"""Full-size dry run on CPU: official-format assets at the paper's sizes (random weights), then ``train.py
experiment=ffhq`` for a few steps of each phase (batch 1 and 2; UV 1024² and 512²), checkpoint, resume, export,
and ``infer.py mode=generate|reconstruct|video`` on the result. Every command's peak RSS and wall time (GNU
``/usr/bin/time -v``), each run's seconds per step per phase (:class:`albedogan.callbacks.step_timer.StepTimer`)
and the checkpoint sizes go to ``<out>/fullsize.json``.

    OMP_NUM_THREADS=2 python scripts/fullsize_dry_run.py --out outputs/fullsize [--assets DIR] [--only b1,b2,uv512]

Run by ``make test-fullsize`` (through ``tests/integration/test_fullsize.py``). Takes ~30-60 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RUNS = ("b1", "b2", "uv512")


def _timed(cmd: list[str], log: Path, env: dict[str, str]) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``; raise with the log's tail on failure; return wall s and peak RSS."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}); log {log}:\n{text[-4000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    peak = round(int(rss.group(1)) / 1024) if rss else None
    return {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_mb": peak}


def _size_mb(path: Path) -> float:
    return round(path.stat().st_size / 2 ** 20, 1)


def _train(name: str, out: Path, assets: Path, env: dict, batch: int, uv: int, steps: int,
           resume: Path | None = None) -> dict:
    run = out / name
    args = [sys.executable, "train.py", "experiment=ffhq", "trainer=cpu", "logger=csv", f"paths.assets_dir={assets}",
            f"paths.output_dir={run}", f"hydra.run.dir={run}/hydra", f"data.batch_size={batch}",
            f"model.albedo_generator.uv_resolution={uv}", "model.schedule.warmup_steps=0",
            "model.schedule.cycle=[[albedo,1],[shape,1]]", f"trainer.max_steps={steps}", "trainer.limit_val_batches=0",
            "trainer.log_every_n_steps=1", "callbacks.model_checkpoint.every_n_train_steps=2",
            "callbacks.rich_progress_bar=null", "callbacks.image_grid=null",
            "+callbacks.step_timer._target_=albedogan.callbacks.step_timer.StepTimer",
            f"+callbacks.step_timer.path={run}/steps.json"]
    if resume is not None:
        args.append(f"ckpt_path={resume}")
    result = _timed(args, out / f"{name}.log", env)
    result.update(json.loads((run / "steps.json").read_text())["summary"], batch=batch, uv=uv, steps=steps)
    ckpts = run / "checkpoints"
    result["last_ckpt_mb"] = _size_mb(ckpts / "last.ckpt")
    result["export_mb"] = _size_mb(ckpts / "inference.safetensors")
    return result


def _infer(name: str, out: Path, assets: Path, env: dict, checkpoint: Path, mode: list[str]) -> dict:
    args = [sys.executable, "infer.py", "world=ffhq", f"paths.assets_dir={assets}", f"checkpoint={checkpoint}",
            f"output_dir={out / name}", f"hydra.run.dir={out / name}/hydra", *mode]
    return _timed(args, out / f"{name}.log", env)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "fullsize")
    parser.add_argument("--assets", type=Path, default=None, help="reuse assets written by an earlier run")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {RUNS}")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    results: dict = {"threads": env["OMP_NUM_THREADS"], "cpu_count": os.cpu_count(), "started": time.ctime()}
    assets = args.assets.resolve() if args.assets else out / "assets"
    if not (assets / "mica.tar").is_file():
        code = ("from tests.helpers.fullsize_assets import write_paper_assets; "
                f"write_paper_assets({str(assets)!r}, full_size=True)")
        results["assets"] = _timed([sys.executable, "-c", code], out / "assets.log", env)
    results["assets_mb"] = {p.name: _size_mb(p) for p in sorted(assets.rglob("*")) if p.is_file()}

    def save() -> None:
        (out / "fullsize.json").write_text(json.dumps(results, indent=1))

    photo = out / "photo.png"
    if not photo.is_file():
        from PIL import Image
        from skimage import data

        Image.fromarray(data.astronaut()).save(photo)
    if "b1" in only:  # 2 steps (albedo, shape) -> last.ckpt; resume to 4 steps -> export; infer on the export
        results["train_b1"] = _train("train_b1", out, assets, env, 1, 1024, 2)
        save()
        results["resume_b1"] = _train("resume_b1", out, assets, env, 1, 1024, 4,
                                      resume=out / "train_b1" / "checkpoints" / "last.ckpt")
        save()
        export = out / "resume_b1" / "checkpoints" / "inference.safetensors"
        results["generate_1024"] = _infer("generate_1024", out, assets, env, export,
                                          ["mode=generate", "mode.seeds=[0,1]",
                                           "render_size=1024"])
        save()
        results["reconstruct_1024"] = _infer("reconstruct_1024", out, assets, env, export,
                                             ["mode=reconstruct", f"input={photo}", "mode.invert.steps=2",
                                              "render_size=1024"])
        save()
        results["video_1024"] = _infer("video_1024", out, assets, env, export,
                                       ["mode=video", "mode.kinds=[turntable]", "mode.seeds=[0]", "mode.frames=4",
                                        "mode.fps=4", "mode.resolution=1024", "mode.batch_size=4"])
        save()
    if "b2" in only:
        results["train_b2"] = _train("train_b2", out, assets, env, 2, 1024, 2)
        save()
    if "uv512" in only:
        results["train_uv512"] = _train("train_uv512", out, assets, env, 1, 512, 2)
        save()
        export = out / "train_uv512" / "checkpoints" / "inference.safetensors"
        results["generate_512"] = _infer("generate_512", out, assets, env, export,
                                         ["mode=generate", "mode.seeds=[0]", "render_size=512"])
    results["finished"] = time.ctime()
    save()
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
