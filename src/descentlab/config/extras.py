"""Parts a default run does not need, and the pip extra that installs each.

``pip install descentlab`` trains the default offline; W&B, TensorBoard and the submitit
launchers come with ``pip install 'descentlab[wandb|tensorboard|slurm|parallel|all]'`` (``make
test`` installs all of them). Choosing one that is not installed is a one-line error
naming the extra, before anything is built.
"""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig

from descentlab.errors import ConfigError

# (text in a _target_, module it imports (a|b: either one), extra that installs it)
EXTRAS = (
    ("wandb", "wandb", "wandb"),
    ("TensorBoardLogger", "tensorboard|tensorboardX", "tensorboard"),  # Lightning takes either
    ("hydra_submitit_launcher", "hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("descentlab_slurm", "hydra_plugins.hydra_submitit_launcher", "slurm"),  # its subclass
    ("hydra_joblib_launcher", "hydra_plugins.hydra_joblib_launcher", "parallel"),
)


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def require_extra(key: str, target: str) -> None:
    """Refuse ``target`` (the ``_target_`` at ``key``) when the extra it needs is missing."""
    for needle, modules, extra in EXTRAS:
        if needle in target and not any(installed(m) for m in modules.split("|")):
            raise ConfigError(
                key,
                target,
                f"{modules.split('|')[0]} is not installed: pip install 'descentlab[{extra}]' "
                f"(or choose another option)",
            )


def check_loggers(loggers: DictConfig | None) -> None:
    for name, node in (loggers or {}).items():
        if isinstance(node, DictConfig) and "_target_" in node:
            require_extra(f"logger.{name}", str(node._target_))
