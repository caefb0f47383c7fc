"""OmegaConf resolvers used by the configs, and config helpers shared by train and tests."""

from __future__ import annotations

import warnings
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from descentlab.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def _num_classes(classes, default: int) -> int:
    """``${n_classes:${data.classes},10}``: the subset's size, else the dataset's count."""
    if classes is not None and not isinstance(classes, (list, tuple, ListConfig)):
        raise ConfigError("data.classes", classes, "a list of class ids, e.g. [3,5], or null")
    return len(classes) if classes is not None else int(default)


def register_resolvers() -> None:
    from descentlab import job

    OmegaConf.register_new_resolver("n_classes", _num_classes, replace=True)
    # one run dir per distributed job (see descentlab.job)
    OmegaConf.register_new_resolver("run_name", job.run_name, replace=True)
    OmegaConf.register_new_resolver("rank_suffix", job.rank_suffix, replace=True)
    OmegaConf.register_new_resolver("rank_zero_only", job.rank_zero_only, replace=True)


register_resolvers()


# configs/hydra/launcher/submitit_{local,slurm}.yaml keep the plugin's option names (the
# command line stays `hydra/launcher=submitit_slurm`) and hold every field themselves, so
# Hydra's deprecated check against the plugin's schema of the same name changes nothing.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/submitit_(local|slurm)' is validated against ConfigStore"
)
