"""Full-size dry run on CPU: official-format assets at the paper's sizes (random weights), then ``train.py
experiment=ffhq`` for a few steps of each phase, checkpoint, resume, export, and ``infer.py
mode=generate|reconstruct|video`` on the result. Runs (``--only``, comma-separated; default all):

* ``b1`` / ``b2``: batch 1 at UV 1024² / batch 2 at UV ``--b2-uv`` (default 1024²) in micro-batches of
  ``--b2-micro-batch`` (``model.micro_batch``, default 1: batch 2 in one pass peaks above 22 GB on CPU, more than a
  24 GB machine has; 0 = one pass): train 2 steps, resume to 4, export, infer on the export;
* ``uv512``: batch 1 at UV 512², 2 steps, ``mode=generate``;
* ``ddp``: ``trainer=ddp`` on 2 CPU processes (gloo) at batch 1 per rank, UV ``--ddp-uv`` (default 256²: two
  full-size ranks at 1024² do not fit in 24 GB), one step per phase, validation, image grid, per-rank records
  (:class:`tests.helpers.ddp_probe.DDPProbe`).

Every command's peak RSS and wall time (GNU ``/usr/bin/time -v``), each run's seconds per step per phase
(:class:`albedogan.callbacks.step_timer.StepTimer`) and the checkpoint sizes go to ``<out>/fullsize.json`` (runs of
earlier invocations with the same ``--out`` are kept).

    OMP_NUM_THREADS=2 python scripts/fullsize_dry_run.py --out outputs/fullsize [--assets DIR] [--only b1,b2,uv512,ddp]

Run by ``make test-fullsize`` (``tests/integration/test_fullsize.py`` and ``test_fullsize_ddp.py``). Takes 1-3 h on
2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from albedogan.utils.io import atomic_write_text  # noqa: E402

RUNS = ("b1", "b2", "uv512", "ddp")


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
           resume: Path | None = None, ddp: bool = False, micro_batch: int | None = None) -> dict:
    """``train.py experiment=ffhq`` at ``batch`` / UV ``uv`` for ``steps`` steps alternating albedo and shape, in
    micro-batches of ``micro_batch`` (None: the whole batch per pass).

    ``ddp``: 2 CPU processes (gloo) with the user's ``trainer=ddp`` (its strategy; CPU and fp32 instead of GPU and
    bf16), one validation batch per rank at the last step, an image grid, and
    :class:`tests.helpers.ddp_probe.DDPProbe` writing each rank's record to ``<out>/<name>_probe/rank<r>.json``.
    A run folder left by an earlier invocation is removed first.
    """
    run = out / name
    for stale in (run, out / f"{name}_probe"):
        shutil.rmtree(stale, ignore_errors=True)
    trainer = ["trainer=cpu", "trainer.limit_val_batches=0", "callbacks.image_grid=null"]
    if ddp:
        trainer = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                   "trainer.limit_val_batches=1", f"trainer.val_check_interval={steps}",
                   "+trainer.num_sanity_val_steps=0",
                   f"callbacks.image_grid.every_n_steps={steps}", "callbacks.image_grid.num_samples=1",
                   f"+callbacks.ddp_probe={{_target_:tests.helpers.ddp_probe.DDPProbe,out:'{out / name}_probe',"
                   f"watch:'{run}'}}"]
    args = [sys.executable, "train.py", "experiment=ffhq", *trainer, "logger=csv", f"paths.assets_dir={assets}",
            f"paths.output_dir={run}", f"hydra.run.dir={run}/hydra", f"data.batch_size={batch}",
            f"model.albedo_generator.uv_resolution={uv}", "model.schedule.warmup_steps=0",
            "model.schedule.cycle=[[albedo,1],[shape,1]]", f"trainer.max_steps={steps}",
            "trainer.log_every_n_steps=1", "callbacks.model_checkpoint.every_n_train_steps=2",
            "callbacks.rich_progress_bar=null",
            f"+callbacks.step_timer={{_target_:albedogan.callbacks.step_timer.StepTimer,path:'{run}/steps.json'}}"]
    if resume is not None:
        args.append(f"ckpt_path={resume}")
    if micro_batch:
        args.append(f"model.micro_batch={micro_batch}")
    result = _timed(args, out / f"{name}.log", env)
    result.update(json.loads((run / "steps.json").read_text())["summary"], batch=batch, uv=uv, steps=steps,
                  micro_batch=micro_batch)
    ckpts = run / "checkpoints"
    result["last_ckpt_mb"] = _size_mb(ckpts / "last.ckpt")
    result["export_mb"] = _size_mb(ckpts / "inference.safetensors")
    if ddp:  # GNU time's figure is the largest single process; each rank measures its own
        probes = [json.loads((out / f"{name}_probe" / f"rank{r}.json").read_text()) for r in range(2)]
        result["peak_rss_mb_per_rank"] = [p["peak_rss_mb"] for p in probes]
    return result


def _infer(name: str, out: Path, assets: Path, env: dict, checkpoint: Path, mode: list[str]) -> dict:
    args = [sys.executable, "infer.py", "world=ffhq", f"paths.assets_dir={assets}", f"checkpoint={checkpoint}",
            f"output_dir={out / name}", f"hydra.run.dir={out / name}/hydra", *mode]
    return _timed(args, out / f"{name}.log", env)


def _pipeline(tag: str, batch: int, uv: int, micro_batch: int | None, out: Path, assets: Path, env: dict,
              photo: Path, results: dict, save) -> None:
    """Batch ``batch`` at UV ``uv``: 2 steps (albedo, shape) -> last.ckpt; resume to 4 steps -> export; then
    ``infer.py mode=generate|reconstruct|video`` on the export (runs ``train_<tag>``, ``resume_<tag>``,
    ``generate_<tag>``, ``reconstruct_<tag>``, ``video_<tag>``)."""
    results[f"train_{tag}"] = _train(f"train_{tag}", out, assets, env, batch, uv, 2, micro_batch=micro_batch)
    save()
    results[f"resume_{tag}"] = _train(f"resume_{tag}", out, assets, env, batch, uv, 4, micro_batch=micro_batch,
                                      resume=out / f"train_{tag}" / "checkpoints" / "last.ckpt")
    save()
    export = out / f"resume_{tag}" / "checkpoints" / "inference.safetensors"
    results[f"generate_{tag}"] = _infer(f"generate_{tag}", out, assets, env, export,
                                        ["mode=generate", "mode.seeds=[0,1]", "render_size=1024"])
    save()
    results[f"reconstruct_{tag}"] = _infer(f"reconstruct_{tag}", out, assets, env, export,
                                           ["mode=reconstruct", f"input={photo}", "mode.invert.steps=2",
                                            "render_size=1024",
                                            # random-weight assets cannot fit a real face (NME ~0.57): the run checks
                                            # sizes and memory, so a poor fit must not fail it
                                            "mode.fail_nme=1000"])
    save()
    results[f"video_{tag}"] = _infer(f"video_{tag}", out, assets, env, export,
                                     ["mode=video", "mode.kinds=[turntable]", "mode.seeds=[0]", "mode.frames=4",
                                      "mode.fps=4", "mode.resolution=1024", "mode.batch_size=4"])
    save()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "fullsize")
    parser.add_argument("--assets", type=Path, default=None, help="reuse assets written by an earlier run")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {RUNS}")
    parser.add_argument("--b2-uv", type=int, default=1024, help="UV resolution of the batch-2 run")
    parser.add_argument("--b2-micro-batch", type=int, default=1,
                        help="model.micro_batch of the batch-2 run (0 = one pass: above 22 GB on CPU at UV 1024²)")
    parser.add_argument("--ddp-uv", type=int, default=256, help="UV resolution of the 2-rank DDP run")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    record = out / "fullsize.json"  # runs of earlier invocations (other --only subsets) are kept
    results: dict = json.loads(record.read_text()) if record.is_file() else {}
    results.update(threads=env["OMP_NUM_THREADS"], cpu_count=os.cpu_count(), started=time.ctime())
    assets = args.assets.resolve() if args.assets else out / "assets"
    if not (assets / "mica.tar").is_file():
        code = ("from tests.helpers.fullsize_assets import write_paper_assets; "
                f"write_paper_assets({str(assets)!r}, full_size=True)")
        results["assets"] = _timed([sys.executable, "-c", code], out / "assets.log", env)
    results["assets_mb"] = {p.name: _size_mb(p) for p in sorted(assets.rglob("*")) if p.is_file()}

    def save() -> None:
        atomic_write_text(record, json.dumps(results, indent=1))

    photo = out / "photo.png"
    if not photo.is_file():
        from PIL import Image
        from skimage import data

        Image.fromarray(data.astronaut()).save(photo)
    for tag, batch, uv, micro in (("b1", 1, 1024, None), ("b2", 2, args.b2_uv, args.b2_micro_batch or None)):
        if tag in only:
            _pipeline(tag, batch, uv, micro, out, assets, env, photo, results, save)
    if "uv512" in only:
        results["train_uv512"] = _train("train_uv512", out, assets, env, 1, 512, 2)
        save()
        export = out / "train_uv512" / "checkpoints" / "inference.safetensors"
        results["generate_512"] = _infer("generate_512", out, assets, env, export,
                                         ["mode=generate", "mode.seeds=[0]", "render_size=512"])
    if "ddp" in only:  # 2 ranks; UV 512² at most on a 24 GB machine (two UV-1024² ranks need ~2 x 12 GB)
        results["ddp"] = _train("ddp", out, assets, env, 1, args.ddp_uv, 2, ddp=True)
        save()
    results["finished"] = time.ctime()
    save()
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
