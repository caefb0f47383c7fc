"""Test a trained model: ``python eval.py ckpt_path=PATH [data=...] [key=value ...]``.

A thin Hydra entry point on the same configs as ``train.py``; the work happens in
``descentlab.run.evaluate.run``. PATH: a checkpoint, a run's ``model.pt`` or a run dir.
"""

import hydra
from omegaconf import DictConfig

import descentlab.config  # noqa: F401  (registers the resolvers the configs use)
from descentlab.config.cli import short_config_errors


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from descentlab.run.evaluate import main as eval_main

    return eval_main(cfg)


if __name__ == "__main__":
    short_config_errors()
    main()
