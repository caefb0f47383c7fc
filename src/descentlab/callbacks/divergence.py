"""Stop at once when the loss stops being a number."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from descentlab.errors import DivergenceError


def last_written_checkpoint(trainer) -> str | None:
    """The most recently written checkpoint file of this run, if one exists."""
    paths = [
        Path(path)
        for cb in trainer.callbacks
        if isinstance(cb, ModelCheckpoint)
        for path in (cb.last_model_path, cb.best_model_path)
        if path
    ]
    existing = [p for p in paths if p.is_file()]
    return str(max(existing, key=lambda p: p.stat().st_mtime)) if existing else None


class StopOnDivergence(L.Callback):
    """Raise :class:`DivergenceError` as soon as the training loss is NaN or ±inf.

    Checked in ``on_before_backward``, i.e. before the bad loss can produce gradients
    and an optimizer step: the weights in memory are still those of the previous step,
    and ``SafeCheckpointIO`` refuses to write non-finite weights anyway. Reading the
    loss on the host stalls a GPU's queue of work, so on CUDA it is checked every
    ``cuda_every_n_steps`` steps (a NaN stays NaN: it is caught at the next check, and
    no checkpoint with non-finite weights is written in between).
    """

    def __init__(self, every_n_steps: int = 1, cuda_every_n_steps: int = 25):
        self.every_n_steps = every_n_steps
        self.cuda_every_n_steps = cuda_every_n_steps

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        every = self.cuda_every_n_steps if loss.is_cuda else self.every_n_steps
        if trainer.global_step % every != 0:
            return
        value = loss.item()  # one host read, no extra tensor ops
        if not math.isfinite(value):
            saved = last_written_checkpoint(trainer)
            kept = (
                f"the last good checkpoint is {saved}"
                if saved
                else "no checkpoint was written before it"
            )
            raise DivergenceError(
                f"the training loss became {value} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); lower optimizer.lr or check the data; {kept}"
            )
