"""Build a run's parts from the config: data, model, callbacks, loggers, trainer, resume.

Each part is built under :func:`building`, which turns whatever its class raised into
one line naming the config group (or the key Hydra names).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from descentlab.errors import (
    BuildError,
    ConfigError,
    DescentlabError,
    ParameterError,
    one_line,
    own_error,
)


def written_key(key: str) -> str:
    """The key a user writes for a node Hydra names through a reference: ``model.init``
    holds ``${init}``, so its ``name`` is set as ``init.name``."""
    from descentlab.config.cli import REFERENCED_GROUPS

    for via, group in REFERENCED_GROUPS.items():
        if f"{key}.".startswith(via):
            return (group + f"{key}."[len(via) :]).rstrip(".")
    return key


@contextmanager
def building(group: str):
    """Report any failure to build ``group`` from the config as one line naming it."""
    from hydra.errors import InstantiationException

    try:
        yield
    except ParameterError as err:  # raised by a class called directly (the optimizer)
        raise err.at(group) from None
    except DescentlabError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the class raised, the config is the cause
        where = re.search(r"full_key: (\S+)", str(err))
        key = where.group(1) if where else group
        ours = own_error(err)
        if isinstance(ours, ParameterError):  # the class names its parameter, we the node
            raise ours.at(written_key(key)) from None
        if ours is not None:  # a class's (or a resolver's) own one-line error names the key
            raise ours from None
        cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err
        raise BuildError(
            f"{key}: cannot be built from the config ({type(cause).__name__}: {one_line(str(cause))})"
        ) from None


def instantiate_group(
    group: DictConfig | None, extra_for: Callable[[str], dict[str, Any]] | None = None
) -> list[Any]:
    """Instantiate every entry of a ``{name: {_target_: ...}}`` group (callbacks, loggers).

    ``extra_for(target)`` gives extra keyword arguments for an entry's ``_target_``.
    """
    from hydra.utils import instantiate

    if not group:
        return []
    return [
        instantiate(node, **(extra_for(str(node._target_)) if extra_for else {}))
        for node in group.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def check_initial_weights(model, cfg: DictConfig) -> None:
    """Refuse a model whose weights are NaN/inf before the first step (a bad init or file)."""
    from descentlab.run.resume import non_finite_keys

    bad = non_finite_keys(model.state_dict())
    if bad:
        source = OmegaConf.to_container(cfg.get("init") or {}, resolve=True)
        source = {k: v for k, v in source.items() if k != "_target_"}
        raise ConfigError(
            "init",
            source,
            f"an initializer that gives finite weights ({bad[0]} is not finite); a "
            f"model.net.checkpoint with NaN/inf weights does the same",
        )


@dataclass
class Parts:
    """Everything ``Trainer.fit`` and the outputs need."""

    cfg: DictConfig
    output_dir: Path
    datamodule: Any
    model: Any
    trainer: Any
    loggers: list[Any]
    history: Any  # descentlab.run.history.MetricsHistory
    stop_request: Any  # descentlab.run.interrupt.StopRequest
    ckpt_path: str | None  # the checkpoint a resume starts from
    hparams: dict[str, Any]


def class_names_of(datamodule) -> list[str] | None:
    """The data's class names (``None`` for real-valued targets): an image folder's folder
    names, else the label ids (a ``data.classes`` subset: the original ids, in its order)."""
    if getattr(datamodule, "targets", "classes") != "classes":
        return None
    names = getattr(datamodule, "classes", None)
    if names:
        return [str(name) for name in names]
    count = getattr(datamodule, "num_classes", None)
    return [str(i) for i in range(count)] if count else None


def without_checkpoints(callbacks: list[Any], checkpointing: bool) -> list[Any]:
    """The callbacks, less the checkpoint writers when ``trainer.enable_checkpointing=false``
    (Lightning refuses any then): the switch means no checkpoints, whoever would write them."""
    from lightning.pytorch.callbacks import Checkpoint
    from lightning.pytorch.utilities import rank_zero_info

    if checkpointing:
        return callbacks
    dropped = [type(cb).__name__ for cb in callbacks if isinstance(cb, Checkpoint)]
    if dropped:
        rank_zero_info(
            f"trainer.enable_checkpointing=false: no checkpoints are written "
            f"(left out: {', '.join(dropped)}); the kept weights still go to model.pt"
        )
    return [cb for cb in callbacks if not isinstance(cb, Checkpoint)]


def keeping_last_current(callbacks: list[Any], checkpoints: Path, checkpointing: bool) -> list[Any]:
    """The callbacks, plus one that keeps ``checkpoints/last.ckpt`` current when the file
    exists (a resumed run) but none of them would write it (``callbacks=none``).

    Else the resumed run ends with ``metrics.json`` and ``model.pt`` at its last epoch and
    ``last.ckpt`` where the earlier run left it, and a later ``ckpt_path=last`` would quietly
    train those epochs again. A fresh ``callbacks=none`` run still writes no checkpoint.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities import rank_zero_info

    from descentlab.callbacks import LastCheckpoint

    last = checkpoints / "last.ckpt"
    writes_last = any(
        isinstance(cb, ModelCheckpoint) and (cb.save_last or cb.filename == "last")
        for cb in callbacks
    )
    if not checkpointing or writes_last or not last.is_file():
        return callbacks
    rank_zero_info(f"{last} exists and no callback writes it: it is kept current every epoch")
    keeper = LastCheckpoint(
        dirpath=str(checkpoints),
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    return [*callbacks, keeper]


def build_model(cfg: DictConfig, task=None):
    """The LightningModule (on ``task``, when built already); a resume rebuilds the net
    without its initial-weight sources."""
    from hydra.utils import instantiate

    given = {"task": task} if task is not None and takes_task(cfg.model) else {}
    if cfg.get("ckpt_path") is not None and cfg.model.get("net") is not None:
        # the checkpoint holds every weight, so the net's sources of initial weights (a
        # pretrained model.pt, torchvision weights) are not read: they may have moved
        from descentlab.models.rebuild import build_net

        net = build_net(OmegaConf.to_container(cfg.model.net, resolve=True))
        return instantiate(cfg.model, net=net, **given)
    return instantiate(cfg.model, **given)


def takes_task(model_cfg: DictConfig) -> bool:
    """Whether the model's class takes a ``task`` (a model config copied from an older
    mlp.yaml may lack the ``task: ${task}`` line: the task group must still apply)."""
    import inspect

    from hydra.utils import get_object

    if "task" in model_cfg:
        return True
    try:
        return "task" in inspect.signature(get_object(model_cfg._target_)).parameters
    except Exception:  # noqa: BLE001 - instantiate reports a target that does not import
        return False


def build_task(cfg: DictConfig, datamodule):
    """The task (``None`` for a config without one), checked against the data before the
    model is built: a regression on class labels is one line, not a shape error."""
    from hydra.utils import instantiate

    if cfg.get("task") is None:
        return None
    with building("task"):
        task = instantiate(cfg.task)
    task.check_data(datamodule)
    check_monitors(cfg, task)
    return task


def check_monitors(cfg: DictConfig, task) -> None:
    """Every callback's ``monitor`` names a metric the task logs while training, with the
    ``mode`` its direction calls for, and ``optimized_metric`` one it logs (else Lightning
    fails inside fit, or silently keeps the worst epoch)."""
    from descentlab.tasks.base import BETTER

    extras = ("diag/", "verify/", "train/penalty")
    monitorable = task.monitorable()
    for name, node in (cfg.get("callbacks") or {}).items():
        metric = node.get("monitor") if isinstance(node, DictConfig) else None
        if metric is None or str(metric).startswith(extras):
            continue
        if metric not in monitorable:
            raise ConfigError(
                f"callbacks.{name}.monitor",
                metric,
                f"a metric the {task.name} task logs while training: {', '.join(monitorable)}",
            )
        direction, mode = task.mode_of(metric), node.get("mode", "min")
        if mode not in BETTER:
            raise ConfigError(f"callbacks.{name}.mode", mode, "min or max")
        if mode != direction:
            raise ConfigError(
                f"callbacks.{name}.mode",
                mode,
                f"{direction} ({BETTER[direction]} {metric} is better)",
            )
    objective = cfg.get("optimized_metric")
    if objective is not None and objective not in task.logged():
        if not str(objective).startswith(extras):
            raise ConfigError(
                "optimized_metric",
                objective,
                f"a metric the {task.name} task logs: {', '.join(task.logged())}",
            )


def check_targets(model, datamodule) -> None:
    """Each split's targets are what the model's task learns from (one line naming the split)."""
    task, splits = getattr(model, "task", None), getattr(datamodule, "split_targets", None)
    if task is None or splits is None:
        return
    for name, y in splits().items():
        task.check_targets(y, f"{type(datamodule).__name__}: the {name} split", name == "train")


def build(cfg: DictConfig) -> Parts:
    """Data (read now, so a missing file is reported before anything is written), model,
    the resume's checked checkpoint, callbacks (the user's and the run's own), loggers,
    trainer."""
    from hydra.utils import instantiate

    from descentlab.callbacks.throughput import Throughput
    from descentlab.config.arguments import check_config_arguments
    from descentlab.run import job, resume
    from descentlab.run.history import MetricsHistory
    from descentlab.run.interrupt import GracefulStop, GracefulStopWithoutSaving, StopRequest
    from descentlab.run.loggers import resume_kwargs
    from descentlab.storage.checkpoints import ConfigInCheckpoint

    output_dir = Path(cfg.paths.output_dir)
    check_config_arguments(cfg, groups=("data", "task"))
    with building("data"):
        datamodule = instantiate(cfg.data)
    task = build_task(cfg, datamodule)
    check_config_arguments(cfg, groups=("model", "optimizer", "init", "callbacks"))
    with building("model"):
        model = build_model(cfg, task)
    if getattr(model, "optimizer_factory", None) is not None:
        with building("optimizer"):  # deferred by Lightning to fit: its errors come now
            model.configure_optimizers()
    check_initial_weights(model, cfg)
    if job.is_rank_zero():
        datamodule.prepare_data()
        datamodule.setup("fit")
        check_targets(model, datamodule)
    ckpt_path = resume.resolve(cfg.get("ckpt_path"), cfg)
    resuming = resume.check(ckpt_path, cfg, model) if ckpt_path else None

    history = MetricsHistory(output_dir / "history.json")
    stop_request = StopRequest()
    checkpointing = cfg.trainer.get("enable_checkpointing") is not False
    stopper = GracefulStop if checkpointing else GracefulStopWithoutSaving
    with building("callbacks"):
        callbacks = [
            history,
            Throughput(),  # perf/samples_per_s, perf/flops_per_s: every run, whatever its callbacks
            *keeping_last_current(
                without_checkpoints(instantiate_group(cfg.get("callbacks")), checkpointing),
                output_dir / "checkpoints",
                checkpointing,
            ),
            ConfigInCheckpoint(resume.fixed_config(cfg), class_names_of(datamodule)),
            stopper(stop_request, output_dir / "checkpoints" / "last.ckpt"),
        ]
    with building("logger"):
        loggers = instantiate_group(
            cfg.get("logger"),
            extra_for=(lambda t: resume_kwargs(t, resuming.global_step)) if resuming else None,
        )
    with building("trainer"):
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    hparams = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
    for logger in loggers:
        logger.log_hyperparams(hparams)
    return Parts(
        cfg,
        output_dir,
        datamodule,
        model,
        trainer,
        loggers,
        history,
        stop_request,
        ckpt_path,
        hparams,
    )
