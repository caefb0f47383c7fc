"""A live progress bar that costs little: drawn on a time budget, showing the current epoch."""

from __future__ import annotations

import time
from typing import Annotated

from lightning.pytorch.callbacks import RichProgressBar

from descentlab.rules import POSITIVE, checked


class ProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, redrawn at most ``refresh_per_second`` times a second.

    Why not Lightning's bar as it is: it updates its task and metrics after every batch and
    its drawing thread redraws up to ``refresh_rate`` (100) times a second. On a step of
    ~1–2 ms that is a measurable share of training (``benchmarks/components.py``). Here a
    batch end only does work when ``1 / refresh_per_second`` seconds have passed since the
    last update, or at an epoch's last batch, and the drawing thread runs at that rate too.

    The bar shows the current epoch's running ``train/loss`` and ``train/acc`` (the mean
    over the batches so far), not the previous epoch's logged values: reading them is a
    host read of two sums, done only when the bar is redrawn.
    """

    @checked
    def __init__(self, refresh_per_second: Annotated[float, POSITIVE] = 4.0, **kwargs):
        # Lightning's refresh_rate is the drawing thread's rate (an int, > 0 = enabled)
        super().__init__(refresh_rate=max(1, round(refresh_per_second)), **kwargs)
        self.min_interval = 1.0 / refresh_per_second
        self._next_update = 0.0

    def _due(self, batch_idx: int, total: float) -> bool:
        """Whether this batch end should update the bar (time budget, or the last batch)."""
        now = time.monotonic()
        if now >= self._next_update or batch_idx + 1 >= total:
            self._next_update = now + self.min_interval
            return True
        return False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.is_enabled and self._due(batch_idx, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0
    ) -> None:
        if self.is_disabled:  # e.g. on every DDP rank but 0
            return
        if trainer.sanity_checking or self._due(
            batch_idx, self.total_val_batches_current_dataloader
        ):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0
    ) -> None:
        if self.is_enabled and self._due(batch_idx, self.total_test_batches_current_dataloader):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        running = getattr(pl_module, "running_train_metrics", None)
        if trainer.training and callable(running):
            metrics.update(running())
        return metrics
