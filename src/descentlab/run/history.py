"""Every epoch's metrics, kept in the checkpoint, so that a resumed run reports its whole history."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from descentlab.storage.atomic import write_json


def _finite_or_str(history: dict[int, dict[str, float]]) -> dict[str, dict]:
    """JSON has no NaN/inf: those are written as the strings "nan", "inf", "-inf"."""
    return {
        str(epoch): {k: v if math.isfinite(v) else str(v) for k, v in sorted(values.items())}
        for epoch, values in sorted(history.items())
    }


# Logged by a validation (val/*) or from one (gap/* = val/loss − train/loss). Lightning keeps
# them in callback_metrics until the next validation: an epoch without one (every other
# epoch under trainer.check_val_every_n_epoch=2, an epoch cut short by trainer.max_steps)
# would otherwise be recorded with the previous validation's values as its own.
VALIDATION_PREFIXES = ("val/", "gap/")


def _scalars(metrics: dict) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (torch.Tensor, int, float)) and torch.as_tensor(value).numel() == 1
    }


class MetricsHistory(L.Callback):
    """``history[epoch]``: the epoch-level metrics (``train/*``, ``val/*``, extras) of each
    finished training epoch (``val/*`` and ``gap/*`` only when a validation ran in it); ``metrics.json`` reads the kept (best) and the last epoch here.

    An epoch's ``train/*`` are logged in the LightningModule's ``on_train_epoch_end``, after
    the callbacks' own hook, so an epoch is recorded when its successor starts, when
    training ends, and whenever a checkpoint is written after it finished (the
    ``last.ckpt`` of an epoch's end therefore carries that epoch too). The history is in
    ``state_dict``: a resumed run reports the epochs trained before the resume.

    With ``path``, rank 0 also writes the whole history there (``history.json`` in the run
    dir: ``{"epochs": {"0": {"train/loss": ...}, ...}}``) each time an epoch is recorded:
    the per-epoch curves ``python -m descentlab.report`` plots, whatever the logger.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.history: dict[int, dict[str, float]] = {}
        self.path = Path(path) if path is not None else None
        self._trainer: L.Trainer | None = None
        self._validated_epoch: int | None = None  # the epoch of the latest validation run

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer

    def record_finished_epoch(self, trainer) -> None:
        """Record the latest finished epoch from ``trainer.callback_metrics``, once."""
        if trainer.sanity_checking:
            return
        metrics = _scalars(trainer.callback_metrics)
        if not any(key.startswith("train/") for key in metrics):
            return  # nothing of a training epoch logged yet (e.g. right after a resume)
        # The fit loop counts an epoch as processed just before its on_train_epoch_end hooks.
        epoch_ended = trainer.fit_loop.epoch_progress.current.processed > trainer.current_epoch
        epoch = trainer.current_epoch if epoch_ended else trainer.current_epoch - 1
        if epoch != self._validated_epoch:
            metrics = {k: v for k, v in metrics.items() if not k.startswith(VALIDATION_PREFIXES)}
        if epoch >= 0 and epoch not in self.history:
            self.history[epoch] = metrics
            if self.path is not None and trainer.is_global_zero:
                # epochs in numeric order (sorted JSON keys would put "10" before "2")
                write_json(self.path, {"epochs": _finite_or_str(self.history)}, sort_keys=False)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.record_finished_epoch(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._validated_epoch = trainer.current_epoch

    def on_train_end(self, trainer, pl_module) -> None:
        self.record_finished_epoch(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.record_finished_epoch(trainer)

    def epoch(self, epoch: int | None) -> dict[str, float]:
        """The metrics of ``epoch`` (``{}`` if it was not recorded)."""
        return dict(self.history.get(epoch, {})) if epoch is not None else {}

    @property
    def last_epoch(self) -> int | None:
        return max(self.history) if self.history else None

    def best_epoch(self, monitor: str, mode: str) -> int | None:
        """The recorded epoch with the best finite ``monitor`` (the earliest on ties)."""
        scored = [
            (values[monitor], epoch)
            for epoch, values in sorted(self.history.items())
            if monitor in values and math.isfinite(values[monitor])
        ]
        if not scored:
            return None
        pick = min if mode == "min" else max
        best = pick(score for score, _ in scored)
        return next(epoch for score, epoch in scored if score == best)

    def state_dict(self) -> dict:
        if self._trainer is not None:  # a checkpoint is being written: include a just-ended epoch
            self.record_finished_epoch(self._trainer)
        return {"history": {int(k): dict(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = {int(k): dict(v) for k, v in state_dict.get("history", {}).items()}
