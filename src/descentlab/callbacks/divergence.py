"""Stop at once when the loss stops being a number."""

from __future__ import annotations

import lightning as L
import torch

from descentlab.errors import DivergenceError


class StopOnDivergence(L.Callback):
    """Raise :class:`DivergenceError` as soon as the training loss is NaN or ±inf.

    Checked in ``on_before_backward``, i.e. before the bad loss can produce gradients
    and an optimizer step: the weights in memory are still those of the previous step,
    and ``SafeCheckpointIO`` refuses to write non-finite weights anyway. Reading the
    loss on the host costs a device synchronization on a GPU, so ``every_n_steps`` can
    space the checks out (a NaN stays NaN: it is caught at the next check).
    """

    def __init__(self, every_n_steps: int = 1):
        self.every_n_steps = every_n_steps

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        if not torch.isfinite(loss).all():
            raise DivergenceError(
                f"the training loss became {loss.item()} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); lower optimizer.lr or check the data. The last good checkpoint "
                f"is kept in {getattr(trainer.checkpoint_callback, 'dirpath', None) or 'the run dir'}"
            )
