"""``run(cfg)``: seed, instantiate, fit, test, write ``metrics.json``. Nothing model-specific.

Data flows one way: config → instantiate → ``Trainer.fit`` → logs/checkpoints →
``metrics.json``. Everything that varies between experiments lives in the configs.

``metrics.json`` describes the model the run keeps: ``train/*`` and ``val/*`` of the best
epoch (the one whose weights are restored, saved and tested), ``test/*`` of those
weights, the last epoch's values under ``last/``, and ``status``: ``completed``,
``early_stopped``, ``diverged``, ``interrupted`` or ``failed`` (then with ``reason``).
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import descentlab.config  # noqa: F401  (registers the config resolvers)
from descentlab.errors import DescentlabError

if TYPE_CHECKING:
    import lightning as L

# torch, lightning and the data libraries are imported inside the functions that need
# them: a config mistake is reported before paying their import time.


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


def _scalar(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` atomically (a reader never sees half a file)."""
    from descentlab.atomic import write_json

    write_json(path, {k: _scalar(v) for k, v in metrics.items()})


def print_table(
    metrics: dict[str, Any],
    where: Path,
    title: str = "final metrics (the kept model; last/ = the last epoch)",
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(metrics.items()):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console = Console()
    console.print(table)
    console.print(f"metrics written to {where}")


def finish_loggers(
    loggers: list[Any], summary: dict[str, Any] | None = None, hparams: dict | None = None
) -> None:
    """Hand each logger the run's final metrics, and close W&B runs.

    - W&B: ``summary`` (the final ``metrics.json``) replaces the run summary, which otherwise
      holds the last value logged under each name: ``val/acc`` there is then the kept
      model's, the value a W&B sweep with ``metric: val/acc`` optimizes. Each run of a
      multirun is closed, so that it is its own W&B run, flushed to disk.
    - TensorBoard: the config (``hparams``) with the final ``train/``, ``val/``, ``test/``
      metrics (as ``final/...``) fills the HParams tab.
    """
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    final = {k: v for k, v in (summary or {}).items() if not k.endswith("_path") and v is not None}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            if wandb.run is None:  # never started (e.g. a failure before the first log)
                continue
            if final:
                logger.experiment.summary.update(final)
            logger.experiment.finish()
        elif isinstance(logger, TensorBoardLogger) and hparams is not None and final:
            # under final/: Lightning logs these as scalars at step 0, which must not add a
            # point to the val/loss (etc.) curves
            numbers = {f"final/{k}": v for k, v in final.items()
                       if k.startswith(("train/", "val/", "test/"))
                       and isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
            logger.log_hyperparams(hparams, metrics=numbers)


def check_initial_weights(model, cfg: DictConfig) -> None:
    """Refuse a model whose weights are NaN/inf before the first step (a bad init or file)."""
    from descentlab.errors import ConfigError
    from descentlab.resume import non_finite_keys

    bad = non_finite_keys(model.state_dict())
    if bad:
        source = OmegaConf.to_container(cfg.get("init") or {}, resolve=True)
        source = {k: v for k, v in source.items() if k != "_target_"}
        raise ConfigError(
            "init", source,
            f"an initializer that gives finite weights ({bad[0]} is not finite); a model.net.checkpoint "
            f"with NaN/inf weights does the same",
        )  # fmt: skip


def kept_epoch(trainer: L.Trainer, history) -> int | None:
    """The epoch whose weights the run keeps: early stopping's best, else the best checkpoint's."""
    from descentlab.callbacks import RestoreBestEarlyStopping

    for callback in trainer.callbacks:
        if isinstance(callback, RestoreBestEarlyStopping) and callback.best_epoch is not None:
            return int(callback.best_epoch)
    ckpt = best_checkpoint_callback(trainer)
    if ckpt is not None and ckpt.monitor:
        best = history.best_epoch(ckpt.monitor, ckpt.mode)
        if best is not None:
            return best
    return history.last_epoch


def best_checkpoint_callback(trainer: L.Trainer):
    """The first ``ModelCheckpoint`` that monitors a metric (``best.ckpt``), if any."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next(
        (cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None
    )


def holds_best_weights(trainer: L.Trainer) -> bool:
    from descentlab.callbacks import RestoreBestEarlyStopping

    return any(
        isinstance(cb, RestoreBestEarlyStopping) and cb.holds_best for cb in trainer.callbacks
    )


def early_stopped(trainer: L.Trainer) -> bool:
    from lightning.pytorch.callbacks import EarlyStopping

    return any(isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0 for cb in trainer.callbacks)


def epoch_metrics(trainer: L.Trainer, history) -> dict[str, Any]:
    """``train/*``, ``val/*`` (and extras) of the kept epoch, the last epoch's under ``last/``."""
    best, last = kept_epoch(trainer, history), history.last_epoch
    metrics: dict[str, Any] = dict(history.epoch(best))
    metrics.update({f"last/{k}": v for k, v in history.epoch(last).items()})
    metrics["best_epoch"] = best
    metrics["epochs"] = trainer.current_epoch
    metrics["global_step"] = trainer.global_step
    return metrics


def failure_reason(err: BaseException) -> str:
    """One line: the message of a user error, else ``Type: message``."""
    from descentlab.cli import one_line

    storage = _storage_error(err)
    if storage is not None:
        return str(storage)
    message = one_line(str(err))
    return message if isinstance(err, DescentlabError) else f"{type(err).__name__}: {message}"


class BuildError(DescentlabError):
    """An object of the config could not be built (a bad value its class refused)."""


def _own_error_within(err: BaseException) -> DescentlabError | None:
    """A one-line error of ours that ``err`` wraps: Hydra's InstantiationException, or
    OmegaConf's InterpolationResolutionError around a resolver's (``data.dims`` reads the
    data file), whose message only adds "raised while resolving interpolation"."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, DescentlabError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


@contextmanager
def building(group: str):
    """Report any failure to build ``group`` from the config as one line naming it."""
    from hydra.errors import InstantiationException

    try:
        yield
    except DescentlabError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the class raised, the config is the cause
        cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err
        ours = _own_error_within(err)
        if ours is not None:  # a class's (or a resolver's) own one-line error names the key
            raise ours from None
        from descentlab.cli import one_line

        where = re.search(r"full_key: (\S+)", str(err))
        key = where.group(1) if where else group
        raise BuildError(
            f"{key}: cannot be built from the config ({type(cause).__name__}: {one_line(str(cause))})"
        ) from None


def signal_exit(trainer, stop_request, output_dir: Path, interrupted_metrics) -> Exception:
    """Lightning ends fit/test with SystemExit after Ctrl-C (and after its own SIGTERM
    handling, e.g. during the sanity check): record the run as interrupted, say which signal."""
    import signal

    from descentlab.callbacks import RunInterrupted

    signum = stop_request.signum or signal.SIGINT
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"
    reason = f"stopped by {name} at epoch {trainer.current_epoch}, step {trainer.global_step}"
    if trainer.is_global_zero:
        write_metrics(output_dir / "metrics.json", interrupted_metrics(reason))
    return RunInterrupted(reason, signum=signum)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the configured model; return (and write) the final metrics."""
    from descentlab.validate import validate

    validate(cfg)
    import lightning as L
    from hydra.utils import instantiate

    from descentlab import resume, run_dir
    from descentlab.atomic import save_torch
    from descentlab.callbacks import GracefulStop, MetricsHistory, RunInterrupted, StopRequest
    from descentlab.checkpoints import load_checkpoint
    from descentlab.console import tidy_console
    from descentlab.errors import DivergenceError
    from descentlab.loggers import resume_kwargs
    from descentlab.runtime import configure_torch

    tidy_console()
    # Metrics are logged per epoch only, so Lightning's per-step logging interval is moot.
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    configure_torch(cfg)
    output_dir = Path(cfg.paths.output_dir)

    with building("data"):
        datamodule: L.LightningDataModule = instantiate(cfg.data)
    with building("model"):
        if cfg.get("ckpt_path") is not None and cfg.model.get("net") is not None:
            # resuming: the checkpoint holds every weight, so the net's sources of initial
            # weights (a pretrained model.pt, torchvision weights) are not read: they may
            # have moved since the run started
            from descentlab.loading import build_net

            net = build_net(OmegaConf.to_container(cfg.model.net, resolve=True))
            model: L.LightningModule = instantiate(cfg.model, net=net)
        else:
            model = instantiate(cfg.model)
    check_initial_weights(model, cfg)
    if run_dir.is_rank_zero():
        # Read the data now (fit would only do it after loggers and checkpoints start):
        # a missing or unreadable file is then reported before anything is written.
        datamodule.prepare_data()
        datamodule.setup("fit")
    ckpt_path = resume.resolve(cfg.get("ckpt_path"), cfg)
    resuming = resume.check(ckpt_path, cfg, model) if ckpt_path else None

    history = MetricsHistory(output_dir / "history.json")
    stop_request = StopRequest()
    with building("callbacks"):
        callbacks = [
            history,
            *instantiate_group(cfg.get("callbacks")),
            resume.ConfigInCheckpoint(cfg),
            GracefulStop(stop_request, output_dir / "checkpoints" / "last.ckpt"),
        ]

    def logger_extra(target: str) -> dict[str, Any]:
        return resume_kwargs(target, resuming.global_step) if resuming else {}

    with building("logger"):
        loggers = instantiate_group(cfg.get("logger"), extra_for=logger_extra)
    with building("trainer"):
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    hparams = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
    for logger in loggers:
        logger.log_hyperparams(hparams)

    def record(status: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
        metrics = {**epoch_metrics(trainer, history), **extra, "status": status}
        if reason:
            metrics["reason"] = reason
        return metrics

    previous_handler = stop_request.install()  # SIGTERM before training: stop when it starts
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        stop_request.restore(previous_handler)
        if not trainer.interrupted:
            raise
        raise signal_exit(
            trainer, stop_request, output_dir, lambda reason: record("interrupted", reason)
        ) from None
    except Exception as err:
        stop_request.restore(previous_handler)
        status = (
            "diverged" if isinstance(err, DivergenceError)
            else "interrupted" if isinstance(err, RunInterrupted)
            else "failed"
        )  # fmt: skip
        if trainer.is_global_zero:
            try:
                failed = record(status, failure_reason(err))
                finish_loggers(loggers, summary=failed, hparams=hparams)
                write_metrics(output_dir / "metrics.json", failed)
            except OSError:  # e.g. the disk that made the run fail is still full
                pass
        raise

    ckpt = best_checkpoint_callback(trainer)
    best_path = ckpt.best_model_path if ckpt is not None else ""
    # A SIGTERM that came as training ended (see GracefulStop) lets the run finish.
    status = "early_stopped" if early_stopped(trainer) else "completed"
    metrics = record(status)
    # After fit the model holds the best epoch's weights when early stopping restored them;
    # otherwise test the best checkpoint.
    if best_path and not holds_best_weights(trainer) and not cfg.trainer.get("fast_dev_run"):
        model.load_state_dict(load_checkpoint(best_path)["state_dict"])
    model_path = output_dir / "model.pt"
    if trainer.is_global_zero and not cfg.trainer.get("fast_dev_run"):
        save_torch(model.net.state_dict(), model_path)  # the final (best) network
    if cfg.get("test", True):
        try:
            results = trainer.test(model, datamodule=datamodule, verbose=False)
        except SystemExit:  # Ctrl-C during the test: the trained model is kept in model.pt
            stop_request.restore(previous_handler)
            if not trainer.interrupted:
                raise
            raise signal_exit(
                trainer, stop_request, output_dir,
                lambda reason: {**metrics, "status": "interrupted", "reason": f"{reason}, during the test"},
            ) from None  # fmt: skip
        metrics.update({k: _scalar(v) for k, v in (results[0] if results else {}).items()})
    metrics["ckpt_path"] = best_path or None
    metrics["model_path"] = str(model_path) if model_path.exists() else None

    finish_loggers(loggers, summary={k: _scalar(v) for k, v in metrics.items()}, hparams=hparams)
    if trainer.is_global_zero:
        write_metrics(output_dir / "metrics.json", metrics)
        print_table(metrics, output_dir / "metrics.json")
    stop_request.restore(previous_handler)
    if stop_request.signum is not None:
        raise RunInterrupted(
            f"SIGTERM came as training ended: the run finished ({status}); exiting as stopped",
            signum=stop_request.signum,
        )
    return metrics


def _user_error(err: BaseException) -> Exception | None:
    """The DescentlabError behind ``err`` (Hydra's instantiate wraps what targets raise)."""
    from omegaconf.errors import OmegaConfBaseException

    seen, config_error = set(), None
    while err is not None and id(err) not in seen:
        if isinstance(err, DescentlabError):
            return err
        if isinstance(err, OmegaConfBaseException) and config_error is None:  # e.g. a missing ???
            config_error = err  # unless a resolver's own error (a missing data.root) is behind it
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return config_error


class StorageError(DescentlabError):
    """A file of the run could not be written (disk full, read-only file system, ...)."""


def _storage_error(err: BaseException) -> StorageError | None:
    """A one-line error for the OSErrors a user fixes outside the code (space, permissions)."""
    import errno

    while err is not None:
        if isinstance(err, OSError) and err.errno in (
            errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST,
        ):  # fmt: skip
            where = err.filename or "a file of the run"
            return StorageError(
                f"cannot write {where}: {err.strerror} (the files written before are kept)"
            )
        err = err.__cause__ or err.__context__
    return None


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def main(cfg: DictConfig) -> float | None:
    """Hydra task: run, and report how it ended.

    - A user error (bad value, missing file, divergence) is one line and exit code 1; in
      a multirun the job is recorded (``metrics.json`` with ``status`` and ``reason``)
      and the sweep goes on with the next job.
    - A signal (SIGTERM, Ctrl-C) stops the run resumably and exits 128 + the signal
      number, also in a multirun: the sweep does not start its next job.
    - Resuming a finished run says so and exits 0 without writing anything.
    """
    output_dir = Path(cfg.paths.output_dir)
    try:
        return _report(cfg, output_dir)
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Destroy the DDP process group a run created, before the interpreter exits: left to
    the interpreter's teardown, gloo's threads could abort a rank ("terminate called without
    an active exception", exit -6) after its run had finished."""
    torch = sys.modules.get("torch")  # never imported: no group to leave
    if (
        torch is not None
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    ):
        torch.distributed.destroy_process_group()


def _report(cfg: DictConfig, output_dir: Path) -> float | None:
    """:func:`main`'s work: the run, and how it ended (see there)."""
    # all torch-free: a refused config exits before torch and Lightning are imported (~1 s)
    from descentlab import run_dir
    from descentlab.cli import one_line
    from descentlab.errors import RunAlreadyFinished, RunInterrupted
    from descentlab.run_dir import remove_if_empty

    try:
        metrics = run(cfg)
    except RunAlreadyFinished as done:
        print(f"descentlab: {done}", file=sys.stderr)
        remove_if_empty(output_dir)
        return None
    except RunInterrupted as stop:
        if run_dir.is_rank_zero():  # once, not once per rank
            print(f"descentlab: {stop}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except Exception as err:
        user_error = _user_error(err) or _storage_error(err)
        full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
        if not in_multirun():
            if user_error is None or full_error:
                raise
            print(f"descentlab: error: {one_line(str(user_error))}", file=sys.stderr)
            remove_if_empty(output_dir)
            sys.exit(1)
        # A sweep records the failed job and goes on.
        if user_error is None or full_error:
            import traceback

            traceback.print_exc()
        reason = failure_reason(user_error or err)
        print(
            f"descentlab: error: {reason} (job recorded in its metrics.json; the sweep goes on)",
            file=sys.stderr,
        )
        if not (output_dir / "metrics.json").is_file():
            try:
                write_metrics(output_dir / "metrics.json", {"status": "failed", "reason": reason})
            except OSError:
                pass
        return None
    value = metrics.get(cfg.get("optimized_metric") or "")
    return value if isinstance(value, (int, float)) else None
