"""``run(cfg)``: seed, instantiate, fit, test, write ``metrics.json``. Nothing model-specific.

Data flows one way: config → instantiate → ``Trainer.fit`` → logs/checkpoints →
``metrics.json``. Everything that varies between experiments lives in the configs.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import descentlab.config  # noqa: F401  (registers the config resolvers)
from descentlab.errors import DescentlabError

if TYPE_CHECKING:
    import lightning as L

# torch, lightning and the data libraries are imported inside the functions that need
# them: a config mistake is reported before paying their import time.


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a ``{name: {_target_: ...}}`` group (callbacks, loggers)."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [
        instantiate(node)
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


def best_epoch_of(trainer: L.Trainer) -> int | None:
    """The epoch whose weights the best checkpoint holds (``None`` without one)."""
    import torch

    for callback in trainer.callbacks:
        best = getattr(callback, "best_epoch", None)
        if best is not None:
            return int(best)
    ckpt = trainer.checkpoint_callback
    path = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
    if path and os.path.exists(path):
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    return None


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def print_table(metrics: dict[str, Any], where: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(metrics.items()):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console = Console()
    console.print(table)
    console.print(f"metrics written to {where}")


def finish_loggers(loggers: list[Any]) -> None:
    """Close W&B runs so that each run of a multirun is its own W&B run, flushed to disk."""
    for logger in loggers:
        if (
            type(logger).__name__ == "WandbLogger"
            and getattr(logger, "_experiment", None) is not None
        ):
            logger.experiment.finish()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the configured model; return (and write) the final metrics."""
    from descentlab.validate import validate

    validate(cfg)
    import lightning as L
    import torch
    from hydra.utils import instantiate

    # Metrics are logged per epoch only, so Lightning's per-step logging interval is moot.
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")
    from descentlab.runtime import configure_torch

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    configure_torch(cfg)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(
            {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
        )

    from descentlab.checkpoints import resolve_ckpt_path

    trainer.fit(
        model,
        datamodule=datamodule,
        ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), cfg),
        weights_only=True,
    )
    metrics: dict[str, Any] = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}

    ckpt = trainer.checkpoint_callback
    best_path = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
    metrics["best_epoch"] = best_epoch_of(trainer)
    metrics["epochs"] = trainer.current_epoch
    metrics["global_step"] = trainer.global_step
    # After fit the model holds the best epoch's weights when early stopping restored them;
    # otherwise test the best checkpoint.
    holds_best = any(getattr(cb, "best_weights", None) is not None for cb in trainer.callbacks)
    test_ckpt = (
        best_path
        if (best_path and not holds_best and not cfg.trainer.get("fast_dev_run"))
        else None
    )
    if test_ckpt:
        model.load_state_dict(
            torch.load(test_ckpt, map_location="cpu", weights_only=True)["state_dict"]
        )
    model_path = Path(cfg.paths.output_dir) / "model.pt"
    if trainer.is_global_zero and not cfg.trainer.get("fast_dev_run"):
        save_atomically(model.net.state_dict(), model_path)  # the final (best) network
    if cfg.get("test", True) and not trainer.interrupted:
        results = trainer.test(model, datamodule=datamodule, verbose=False)
        metrics.update({k: _scalar(v) for k, v in (results[0] if results else {}).items()})
    metrics["ckpt_path"] = best_path or None
    metrics["model_path"] = str(model_path) if model_path.exists() else None

    finish_loggers(loggers)
    output_dir = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        write_metrics(output_dir / "metrics.json", metrics)
        print_table(metrics, output_dir / "metrics.json")
    return metrics


def _user_error(err: BaseException) -> Exception | None:
    """The DescentlabError behind ``err`` (Hydra's instantiate wraps what targets raise)."""
    from omegaconf.errors import OmegaConfBaseException

    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (DescentlabError, OmegaConfBaseException)):  # e.g. a missing ??? value
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def main(cfg: DictConfig) -> float | None:
    """Hydra task: run, and turn user errors into one line and exit code 1."""
    try:
        metrics = run(cfg)
    except Exception as err:
        user_error = _user_error(err)
        if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        from descentlab.cli import one_line

        print(f"descentlab: error: {one_line(str(user_error))}", file=sys.stderr)
        sys.exit(1)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return value if isinstance(value, (int, float)) else None
