"""Stop at once when the loss stops being a number."""

from __future__ import annotations

import math

import lightning as L

from descentlab.errors import DivergenceError


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
            raise DivergenceError(
                f"the training loss became {value} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); lower optimizer.lr or check the data. The last good checkpoint "
                f"is kept in {getattr(trainer.checkpoint_callback, 'dirpath', None) or 'the run dir'}"
            )
