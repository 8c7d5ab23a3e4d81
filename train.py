"""Train AlbedoGAN: ``python train.py experiment=synthetic`` (embedded world) or ``experiment=ffhq`` (official assets).

Thin entry point: :func:`albedogan.cli.launch.launch` validates the command line (one line per mistake, exit status
2) before Hydra composes ``conf/train.yaml`` and :func:`albedogan.entry.run_train` instantiates and runs.
"""

import hydra
from omegaconf import DictConfig

from albedogan.cli.launch import guarded, launch


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from albedogan.entry import run_train

    guarded("train", cfg, run_train)


if __name__ == "__main__":
    launch(main, "train")
