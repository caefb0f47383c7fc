"""Train a model: ``python train.py [+experiment=NAME] [group=option ...] [key=value ...]``.

A thin Hydra entry point; the work happens in ``descentlab.run.train.run``.
"""

import sys

import hydra
from omegaconf import DictConfig

import descentlab.config  # noqa: F401  (registers the resolvers the configs use)
from descentlab.config.cli import short_config_errors


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from descentlab.run.train import main as run_main

    return run_main(cfg)


if __name__ == "__main__":
    short_config_errors()
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C before training started (while importing, loading data)
        print(
            "descentlab: interrupted (Ctrl-C) before training started; nothing to resume",
            file=sys.stderr,
        )
        sys.exit(130)
