"""Predict with a trained model: ``python predict.py ckpt_path=PATH input=FOLDER_OR_FILE``.

A thin Hydra entry point on the same configs as ``train.py``; the work happens in
``descentlab.run.predict.run``. PATH: a checkpoint, a run's ``model.pt`` or a run dir.
"""

import hydra
from omegaconf import DictConfig

import descentlab.config  # noqa: F401  (registers the resolvers the configs use)
from descentlab.config.cli import short_config_errors


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    from descentlab.run.predict import main as predict_main

    predict_main(cfg)


if __name__ == "__main__":
    short_config_errors()
    main()
