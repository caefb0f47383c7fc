"""Which epoch's weights a run keeps, and what ``metrics.json`` says about them.

The kept epoch is early stopping's best when :class:`RestoreBestEarlyStopping` ran, else
the best checkpoint's (``best.ckpt``, by its monitor), else the last. ``metrics.json``
holds that epoch's ``train/*``, ``val/*`` and the last epoch's under ``last/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def best_checkpoint_callback(trainer):
    """The first ``ModelCheckpoint`` that monitors a metric (``best.ckpt``), if any."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next(
        (cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None
    )


def _restoring_early_stopping(trainer):
    from descentlab.callbacks import RestoreBestEarlyStopping

    return next((cb for cb in trainer.callbacks if isinstance(cb, RestoreBestEarlyStopping)), None)


def kept_epoch(trainer, history) -> int | None:
    """The epoch whose weights the run keeps (see the module docstring)."""
    early = _restoring_early_stopping(trainer)
    if early is not None and early.best_epoch is not None:
        return int(early.best_epoch)
    ckpt = best_checkpoint_callback(trainer)
    if ckpt is not None and ckpt.monitor:
        best = history.best_epoch(ckpt.monitor, ckpt.mode)
        if best is not None:
            return best
    return history.last_epoch


def stop_status(trainer) -> str:
    """Why fit ended normally: ``early_stopped``, ``max_steps`` (``trainer.max_steps``
    reached), ``max_time`` (``trainer.max_time`` ran out) or ``completed`` (``max_epochs``)."""
    from lightning.pytorch.callbacks import Timer

    if early_stopped(trainer):
        return "early_stopped"
    # fast_dev_run sets max_steps itself: a check that runs, not a limit the user set
    if not trainer.fast_dev_run and 0 < trainer.max_steps <= trainer.global_step:
        return "max_steps"
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return "max_time"
    return "completed"


def early_stopped(trainer) -> bool:
    from lightning.pytorch.callbacks import EarlyStopping

    return any(isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0 for cb in trainer.callbacks)


def epoch_metrics(trainer, history) -> dict[str, Any]:
    """``train/*``, ``val/*`` (and extras) of the kept epoch, the last epoch's under ``last/``."""
    best, last = kept_epoch(trainer, history), history.last_epoch
    metrics: dict[str, Any] = dict(history.epoch(best))
    metrics.update({f"last/{k}": v for k, v in history.epoch(last).items()})
    metrics["best_epoch"] = best
    metrics["epochs"] = trainer.current_epoch
    metrics["global_step"] = trainer.global_step
    return metrics


def keep_best(trainer, model, output_dir: Path, fast_dev_run: bool) -> tuple[str, Path | None]:
    """Put the kept weights into ``model`` and save its network as ``model.pt``.

    After fit the model holds the best epoch's weights when early stopping restored them;
    otherwise they are loaded from the best checkpoint. Returns (best checkpoint path or
    ``""``, the ``model.pt`` written or None).
    """
    from descentlab.storage.atomic import save_torch
    from descentlab.torchfile import load_checkpoint

    ckpt = best_checkpoint_callback(trainer)
    best_path = ckpt.best_model_path if ckpt is not None else ""
    early = _restoring_early_stopping(trainer)
    holds_best = early is not None and early.holds_best
    if best_path and not holds_best and not fast_dev_run:
        model.load_state_dict(load_checkpoint(best_path)["state_dict"])
    model_path = output_dir / "model.pt"
    if trainer.is_global_zero and not fast_dev_run:
        save_torch(model.net.state_dict(), model_path)
    return best_path, (model_path if model_path.exists() else None)
