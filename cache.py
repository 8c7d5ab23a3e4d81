"""Write dataset caches: ``python cache.py data=teacher_cache`` (teacher samples) or ``python cache.py data=images
data.mix.path=photos/`` (detected, aligned real face crops). Composes ``conf/train.yaml`` like ``train.py``, so the
same overrides train from the cache; see :mod:`albedogan.caching`.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from albedogan.caching import run_cache

    run_cache(cfg)


if __name__ == "__main__":
    main()
