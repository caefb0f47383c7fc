"""What a finished (or stopped) run leaves: ``metrics.json``, the console table, the loggers' summaries."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from descentlab.storage.atomic import write_json


def scalar(value: Any) -> Any:
    """A plain JSON value: a tensor's number, NaN/inf as strings (JSON has neither)."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def task_fields(model) -> dict[str, Any]:
    """What the run's task was and how its runs rank: ``task``, ``monitor``, ``objective``
    and ``objective_mode`` (``min``/``max``), read by ``descentlab.report``."""
    task = getattr(model, "task", None)
    if task is None:
        return {}
    return {
        "task": task.name,
        "monitor": task.monitor,
        "objective": task.objective,
        "objective_mode": task.mode_of(task.objective),
    }


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` atomically (a reader never sees half a file)."""
    write_json(path, {k: scalar(v) for k, v in metrics.items()})


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
            numbers = {
                f"final/{k}": v
                for k, v in final.items()
                if k.startswith(("train/", "val/", "test/"))
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
            }
            logger.log_hyperparams(hparams, metrics=numbers)
