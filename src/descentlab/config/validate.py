"""Check the composed config before any data is loaded: one clear line per mistake.

Each check names the key, the value given and what is allowed (:class:`ConfigError`).
Hydra itself rejects unknown group options and keys before we get here.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig, ListConfig, OmegaConf

from descentlab.config import device_count
from descentlab.config.extras import check_loggers
from descentlab.errors import ConfigError, ParameterError
from descentlab.rules import POSITIVE_INT, TABLES, is_integer, is_number


def _check_number(key: str, value, allowed: str, ok) -> None:
    """``value`` must be a finite number (not a string such as 'abc', not nan/inf) with ``ok(value)``."""
    if value is None:
        return
    if not is_number(value) or not ok(value):
        raise ConfigError(key, value, allowed)


def _check_data(data: DictConfig) -> None:
    """What spans keys (the single keys are rules.DATA)."""
    val, test = data.get("val_fraction"), data.get("test_fraction")
    if val is not None and test is not None and val + test >= 1:
        raise ConfigError(
            "data.val_fraction",
            val,
            f"a fraction that leaves training data: val_fraction + test_fraction ({test}) < 1",
        )
    augment = data.get("augment")
    if augment is not None and not (isinstance(augment, DictConfig) and "_target_" in augment):
        raise ConfigError(
            "data.augment", augment, "null or a transform config (use regularizer=augment)"
        )
    val_size = data.get("val_size")
    if val_size is not None and not POSITIVE_INT.ok(val_size):
        raise ConfigError(
            "data.val_size", val_size, "a positive integer (images held out for validation)"
        )
    classes = data.get("classes")
    if classes is not None and "num_classes_total" in data and data.num_classes_total is None:
        raise ConfigError(
            "data.classes", classes, "null: it selects class labels, and y holds real values"
        )
    if classes is not None:
        total = data.get("num_classes_total", 10)
        values = list(classes) if isinstance(classes, ListConfig) else classes
        if (
            not isinstance(values, list)
            or len(values) < 2
            or any(
                not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < total for c in values
            )
            or len(set(values)) != len(values)
        ):
            raise ConfigError(
                "data.classes",
                values,
                f"a list of at least 2 distinct class ids in 0..{total - 1} (one class is no classification task)",
            )


def _check_net(net: DictConfig, resuming: bool = False) -> None:
    """The files and names a net reads (the single keys are rules.NET)."""
    checkpoint = net.get("checkpoint")
    # a resumed run takes every weight from its checkpoint: the initial file is not read
    if checkpoint is not None and not resuming and not os.path.isfile(checkpoint):
        raise ConfigError(
            "model.net.checkpoint",
            checkpoint,
            "an existing file (model.pt of an earlier run) or null",
        )
    # last: the list of torchvision's models imports torchvision (seconds)
    if str(net.get("_target_", "")).endswith("Backbone"):
        from descentlab.models.backbone import classification_models

        if net.get("name") not in classification_models():
            raise ConfigError(
                "model.net.name",
                net.get("name"),
                "a torchvision classification model, e.g. resnet18, mobilenet_v3_small",
            )


def _check_optimizer(optimizer: DictConfig) -> None:
    """torch.optim's ``betas`` (the lecture's optimizers' ranges are in rules.OPTIMIZER)."""
    betas = optimizer.get("betas")
    if betas is not None and not (
        isinstance(betas, ListConfig)
        and len(betas) == 2
        and all(is_number(b) and 0 <= b < 1 for b in betas)
    ):
        shown = list(betas) if isinstance(betas, ListConfig) else betas
        raise ConfigError("optimizer.betas", shown, "two numbers in [0, 1)")


def check_tables(cfg: DictConfig, groups: tuple[str, ...] | None = None) -> None:
    """Every key of :data:`descentlab.rules.TABLES` the config sets (in ``groups``, default
    all), by the rule its class declares (the same objects): torch-free, so such a refusal
    takes about a second."""
    for where, table in TABLES.items():
        if groups is not None and where not in groups:
            continue
        node = OmegaConf.select(cfg, where)
        if not isinstance(node, DictConfig):
            continue
        for key, rule in table.items():
            if key in node:
                value = node.get(key)
                if isinstance(value, ListConfig):
                    value = list(value)
                try:
                    rule.check(key, value)
                except ParameterError as err:
                    raise err.at(where) from None


def _check_trainer(trainer: DictConfig) -> None:
    _check_devices(trainer)
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and max_epochs != -1 and not POSITIVE_INT.ok(max_epochs):
        raise ConfigError(
            "trainer.max_epochs", max_epochs, "a positive integer (or -1 for no limit)"
        )
    every = trainer.get("check_val_every_n_epoch")
    if every is not None and not POSITIVE_INT.ok(every):
        raise ConfigError("trainer.check_val_every_n_epoch", every, "a positive integer (or null)")
    min_epochs = trainer.get("min_epochs")
    if min_epochs is not None and (not isinstance(min_epochs, int) or min_epochs < 0):
        raise ConfigError("trainer.min_epochs", min_epochs, "an integer >= 0")


def _check_devices(trainer: DictConfig) -> None:
    """On the CPU, more processes than cores only slow every one of them down (and 99
    processes on 2 cores never finish starting): refused rather than capped, so that the
    global batch (devices × data.batch_size) is always what was asked for."""
    devices = trainer.get("devices")
    if devices in (None, "auto", -1, "-1") or isinstance(devices, ListConfig):
        return
    if not POSITIVE_INT.ok(devices):
        raise ConfigError(
            "trainer.devices", devices, "a positive integer, 'auto' or a list of device ids"
        )
    cores = os.cpu_count() or 1
    accelerator = trainer.get("accelerator", "auto")
    if devices > cores and (accelerator == "cpu" or (accelerator == "auto" and not _has_cuda())):
        raise ConfigError(
            "trainer.devices", devices, f"at most {cores} on this machine's CPU ({cores} cores)"
        )
    num_nodes = trainer.get("num_nodes", 1)
    if not POSITIVE_INT.ok(num_nodes):
        raise ConfigError("trainer.num_nodes", num_nodes, "a positive integer")
    # Under torchrun (TORCHELASTIC_RUN_ID) the processes exist already: Lightning refuses a
    # mismatch with a traceback on every rank, after the data is read
    world = os.environ.get("WORLD_SIZE")
    if os.environ.get("TORCHELASTIC_RUN_ID") and world and devices * num_nodes != int(world):
        raise ConfigError(
            "trainer.devices",
            devices,
            f"trainer.devices × trainer.num_nodes = {world}, the processes torchrun started "
            f"(num_nodes={num_nodes})",
        )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _check_top_level(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32):
        raise ConfigError("seed", seed, f"an integer in 0..{2**32 - 1}")
    precision = cfg.get("float32_matmul_precision")
    if precision not in (None, "highest", "high", "medium"):
        raise ConfigError(
            "float32_matmul_precision", precision, "one of highest, high, medium or null"
        )
    if not isinstance(cfg.get("flush_denormal", False), bool):
        raise ConfigError("flush_denormal", cfg.get("flush_denormal"), "true or false")
    threads = cfg.get("num_threads", "auto")
    cores = os.cpu_count() or 1
    if threads not in (None, "auto") and not (POSITIVE_INT.ok(threads) and threads <= cores):
        # more threads than cores only spin-wait for one another (as trainer.devices)
        raise ConfigError("num_threads", threads, f"auto, null or 1..{cores} on this machine")


def check_launcher(launcher: DictConfig, trainer: DictConfig) -> None:
    """The multirun's launcher options that its plugin would take with a traceback (or, for
    SLURM's time limit, take as no limit at all)."""
    target = str(launcher.get("_target_", ""))
    if "JoblibLauncher" in target:
        n_jobs = launcher.get("n_jobs")
        cores = os.cpu_count() or 1
        # joblib starts n_jobs workers whatever the sweep's size: 999 took minutes to start
        # and the sweep never exited; more jobs than cores only wait for one another
        if not (is_integer(n_jobs) and (0 < n_jobs <= cores or n_jobs == -1)):
            raise ConfigError(
                "hydra.launcher.n_jobs",
                n_jobs,
                f"a number of jobs at once from 1 to {cores} (this machine's cores), or -1 "
                "(one per core)",
            )
        if _several_processes(trainer):
            # Lightning starts ranks 1.. by running this process's command line again: a joblib
            # worker's is loky's, not train.py's
            raise ConfigError(
                "hydra/launcher",
                "joblib",
                "a launcher whose jobs are train.py processes for a multi-process trainer "
                "(trainer.devices > 1): hydra/launcher=submitit_local or the default one",
            )
    if "SlurmLauncher" in target or "LocalLauncher" in target:
        timeout = launcher.get("timeout_min")
        if not POSITIVE_INT.ok(timeout):  # SLURM takes --time=0 as no limit, and -5 as is
            raise ConfigError("hydra.launcher.timeout_min", timeout, "a positive number of minutes")


def check_sweeper(sweeper: DictConfig) -> None:
    """``hydra/sweeper=optuna``'s counts, checked before the sweep dir is claimed (the sweeper
    checks them again for Python callers, but by then the dir holds a lock)."""
    if "descentlab_optuna" not in str(sweeper.get("_target_", "")):
        return
    for key, what in (("n_trials", "trials to run (at least 1)"), ("n_jobs", "trials at once")):
        value = sweeper.get(key)
        if not POSITIVE_INT.ok(value):
            raise ConfigError(f"hydra.sweeper.{key}", value, f"a positive number of {what}")


def _several_processes(trainer: DictConfig) -> bool:
    """More than one training process, as far as the config says before the job starts."""
    count = device_count(trainer.get("devices", 1))
    return (count is not None and count > 1) or (
        is_integer(trainer.get("num_nodes")) and trainer.num_nodes > 1
    )


def is_file(path, key: str = "ckpt_path") -> bool:
    """A local file, or a file at any fsspec URL (``s3://...``: fsspec is imported only then).
    A URL whose protocol needs a package that is not installed is a ConfigError on ``key``."""
    if "://" not in str(path):
        return os.path.isfile(path)
    import fsspec

    try:
        fs, where = fsspec.core.url_to_fs(str(path))
    except (ImportError, ValueError) as err:  # e.g. s3:// without s3fs; an unknown protocol
        raise ConfigError(key, str(path), f"a readable URL ({str(err).splitlines()[0]})") from None
    return fs.isfile(where)


def _missing_keys(cfg: DictConfig) -> list[str]:
    """The keys left at ``???``. (``OmegaConf.missing_keys`` resolves interpolations and
    fails on one that reads a ``???`` value, e.g. finetune_backbone's
    ``${if_set:${pretrained},...}``: the raw values are walked instead.)"""
    found = []

    def walk(node, prefix: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, (dict, list)):
                walk(value, f"{prefix}{key}.")
            elif value == "???":
                found.append(f"{prefix}{key}")

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return sorted(found)


def check_ckpt_path_not_empty(ckpt_path) -> None:
    """``ckpt_path=`` (an empty value, as from an unset shell variable: ``ckpt_path=$CKPT``) is
    refused: read as "no checkpoint", it silently trained a new run instead of resuming."""
    if isinstance(ckpt_path, str) and not ckpt_path.strip():
        raise ConfigError(
            "ckpt_path",
            ckpt_path,
            "an existing checkpoint file, 'last', or null (it is empty: an unset shell variable?)",
        )


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first invalid value found."""
    check_ckpt_path_not_empty(cfg.get("ckpt_path"))
    missing = _missing_keys(cfg)
    if missing:
        resuming = cfg.get("ckpt_path") is not None
        raise ConfigError(
            missing[0],
            "???",
            "a value is required here (set it on the command line"
            + ("; a resume takes the overrides its run was started with)" if resuming else ")"),
        )
    _check_top_level(cfg)
    check_loggers(cfg.get("logger"))
    check_tables(cfg, groups=tuple(g for g in TABLES if g != "task"))
    _check_data(cfg.data)
    check_tables(cfg, groups=("task",))  # after the data: task.outputs follows data.classes
    _check_optimizer(cfg.model.get("optimizer", {}))
    scheduler = cfg.model.get("scheduler")
    if scheduler is not None and not (
        isinstance(scheduler, DictConfig) and "_target_" in scheduler
    ):
        raise ConfigError(
            "model.scheduler",
            scheduler,
            "null or a scheduler config: {_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,...}",
        )
    if isinstance(scheduler, DictConfig) and "T_max" in scheduler:
        # CosineAnnealingLR: 0 divides by zero after an epoch, a negative one runs backwards
        if not POSITIVE_INT.ok(scheduler.get("T_max")):
            raise ConfigError("model.scheduler.T_max", scheduler.get("T_max"), "a positive integer")
    callbacks = cfg.get("callbacks") or {}
    unfreezing = callbacks.get("backbone_finetuning") or {}
    at = unfreezing.get("unfreeze_backbone_at_epoch", 0)
    if not (is_number(at) and isinstance(at, int) and at >= 0):
        key = "callbacks.backbone_finetuning.unfreeze_backbone_at_epoch"
        raise ConfigError(key, at, "an integer >= 0")
    _check_number(
        "callbacks.backbone_finetuning.backbone_initial_ratio_lr",
        unfreezing.get("backbone_initial_ratio_lr"),
        "a number > 0",
        lambda v: v > 0,
    )
    if cfg.model.get("net", {}).get("freeze") is True and unfreezing:
        raise ConfigError(
            "model.net.freeze",
            True,
            "false with callbacks=[default,finetune] (its BackboneFinetuning unfreezes the "
            "backbone at callbacks.backbone_finetuning.unfreeze_backbone_at_epoch)",
        )
    _check_trainer(cfg.trainer)
    # late: for model=backbone it imports torchvision (seconds) to check the model's name
    _check_net(cfg.model.get("net", {}), resuming=cfg.get("ckpt_path") is not None)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path not in (None, "last") and not is_file(ckpt_path):
        raise ConfigError("ckpt_path", ckpt_path, "an existing checkpoint file, 'last', or null")
