"""OmegaConf resolvers used by the configs, and config helpers shared by train and tests."""

from __future__ import annotations

import warnings
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from descentlab.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"


def _num_classes(classes, default: int) -> int:
    """``${n_classes:${data.classes},10}``: the subset's size, else the dataset's count."""
    if classes is not None and not isinstance(classes, (list, tuple, ListConfig)):
        raise ConfigError("data.classes", classes, "a list of class ids, e.g. [3,5], or null")
    if default is None:  # real-valued targets have no classes (data.classes is refused later)
        return None
    return len(classes) if classes is not None else int(default)


def _arrays_dims(path: str) -> list[int]:
    """``${arrays_dims:${.path}}``: the shape of one sample of a data=arrays file."""
    from descentlab.data.array_files import array_info

    return array_info(path)[0]


def _arrays_target_size(path: str) -> int | None:
    """``${arrays_target_size:${.path}}``: values per sample of a data=arrays file's real-valued
    y (null for labels)."""
    from descentlab.data.array_files import array_info

    return array_info(path)[2]


def _arrays_classes(path: str) -> int | None:
    """``${arrays_classes:${.path}}``: max(y) + 1 of a data=arrays file (null for real values)."""
    from descentlab.data.array_files import array_info

    return array_info(path)[1]


def _folder_classes(root: str) -> int:
    """``${folder_classes:${.root}}``: the class folders of a data=image_folder tree."""
    from descentlab.data.image_folder import class_names

    return len(class_names(root))


def _folder_dims(size, name, weights) -> list[int]:
    """``${folder_dims:...}``: [3, S, S], S = data.image_size, else the pretrained weights' crop size."""
    from descentlab.data.image_folder import preprocessing

    crop = preprocessing(name, weights, image_size=size)["crop_size"]
    return [3, crop, crop]


def _if_set(value, when_set, otherwise):
    """``${if_set:${pretrained},A,B}``: A when the value is given (not null), else B."""
    return otherwise if value is None else when_set


def _objective_direction(optimized_metric, objective) -> str:
    """``${objective_direction:${optimized_metric},${task.objective}}``: which way a sweeper
    optimizes the value each job returns (``optimized_metric``, else the task's objective; see
    descentlab.run.exits.run_task). Not ``${task.mode}``: that is the *monitor's* mode
    (classification monitors val/loss, min, but its objective val/acc is better high)."""
    from descentlab.rules import METRIC_MODES

    metric = optimized_metric or objective
    mode = METRIC_MODES.get(str(metric).rsplit("/", 1)[-1])
    if mode is None:
        raise ConfigError(
            "hydra.sweeper.direction",
            f"(follow {metric})",
            f"which way {metric} is better is not known: set hydra.sweeper.direction="
            "minimize or maximize",
        )
    return "minimize" if mode == "min" else "maximize"


def device_count(devices) -> int | None:
    """trainer.devices as a number of devices: None for ``auto``/-1 (not known before the job).
    The one reading of trainer.devices as a count (the SLURM request, the launcher checks)."""
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    if str(devices).lstrip("-").isdigit() and int(devices) > 0:
        return int(devices)
    return None


def _slurm_gpus(accelerator, devices) -> int | None:
    """``${slurm_gpus:${trainer.accelerator},${trainer.devices}}``: the launcher's
    ``gpus_per_node``. trainer.devices on a GPU trainer; None on the CPU (no ``--gpus-per-node``
    in the sbatch script at all: a CPU partition without GPUs may refuse even ``=0``);
    ``accelerator: auto`` (the default trainer) asks for GPUs only when the launching machine
    has one."""
    accelerator = str(accelerator)
    if accelerator == "auto":
        import torch

        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator not in ("gpu", "cuda"):
        return None
    count = device_count(devices)
    if count is None:
        raise ConfigError(
            "trainer.devices",
            devices,
            "a number of GPUs per node under hydra/launcher=submitit_slurm (SLURM allocates "
            "them before the job starts), e.g. trainer.devices=4",
        )
    return count


def _slurm_tasks(gpus, devices) -> int:
    """``${slurm_tasks:${.gpus_per_node},${trainer.devices}}``: one task per GPU, or per
    process of a CPU DDP trainer (trainer=ddp_cpu: 2); Lightning maps SLURM's tasks to ranks."""
    if gpus:
        return int(gpus)
    return device_count(devices) or 1


def register_resolvers() -> None:
    from descentlab.run import job

    OmegaConf.register_new_resolver("if_set", _if_set, replace=True)
    OmegaConf.register_new_resolver("n_classes", _num_classes, replace=True)
    OmegaConf.register_new_resolver("arrays_dims", _arrays_dims, replace=True)
    OmegaConf.register_new_resolver("arrays_classes", _arrays_classes, replace=True)
    OmegaConf.register_new_resolver("arrays_target_size", _arrays_target_size, replace=True)
    OmegaConf.register_new_resolver("folder_classes", _folder_classes, replace=True)
    OmegaConf.register_new_resolver("folder_dims", _folder_dims, replace=True)
    OmegaConf.register_new_resolver("objective_direction", _objective_direction, replace=True)
    OmegaConf.register_new_resolver("slurm_gpus", _slurm_gpus, replace=True)
    OmegaConf.register_new_resolver("slurm_tasks", _slurm_tasks, replace=True)
    # one run dir per distributed job (see descentlab.run.job)
    OmegaConf.register_new_resolver("run_name", job.run_name, replace=True)
    OmegaConf.register_new_resolver("rank_suffix", job.rank_suffix, replace=True)
    OmegaConf.register_new_resolver("rank_zero_only", job.rank_zero_only, replace=True)


register_resolvers()


# configs/hydra/launcher/submitit_{local,slurm}.yaml keep the plugin's option names (the
# command line stays `hydra/launcher=submitit_slurm`) and hold every field themselves, so
# Hydra's deprecated check against the plugin's schema of the same name changes nothing.
warnings.filterwarnings(
    "ignore",
    message=r"\s*'hydra/launcher/(submitit_local|submitit_slurm|joblib)' is validated against ConfigStore",
)
