"""Inference: ``python infer.py mode=<mode> ...`` (modes in conf/mode/; see README).

Thin entry point: Hydra composes ``conf/infer.yaml``; :func:`albedogan.entry.run_infer` instantiates and runs. The
process exits with the mode's status (e.g. ``mode=reconstruct`` exits 1 when any input failed).
"""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> int:
    from albedogan.entry import run_infer

    status = run_infer(cfg)
    if status:
        sys.exit(status)  # Hydra drops the task's return value; SystemExit carries the status through
    return status


if __name__ == "__main__":
    sys.exit(main())
