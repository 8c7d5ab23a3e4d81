"""Train AlbedoGAN: ``python train.py experiment=synthetic`` (embedded world) or ``experiment=ffhq`` (official assets).

Thin entry point: Hydra composes ``conf/train.yaml``; :func:`albedogan.entry.run_train` instantiates and runs.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from albedogan.entry import run_train

    run_train(cfg)


if __name__ == "__main__":
    main()
