"""Inference: ``python infer.py mode=<mode> ...`` (modes in conf/mode/; ``--help`` lists them; see README).

Thin entry point: :func:`albedogan.cli.launch.launch` validates the command line (one line per mistake, exit status
2) before Hydra composes ``conf/infer.yaml`` and :func:`albedogan.entry.run_infer` runs the mode. The process exits
with the mode's status (e.g. ``mode=reconstruct`` exits 1 when any input failed).
"""

import sys

import hydra
from omegaconf import DictConfig

from albedogan.cli.launch import guarded, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> int:
    from albedogan.entry import run_infer

    status = guarded("infer", cfg, run_infer)
    if status:
        sys.exit(status)  # Hydra drops the task's return value; SystemExit carries the status through
    return status


if __name__ == "__main__":
    launch(main, "infer")
