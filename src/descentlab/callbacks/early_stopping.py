"""Early stopping that leaves the model with its best weights (Keras' restore_best_weights)."""

from __future__ import annotations

import copy

import torch
from lightning.pytorch.callbacks import EarlyStopping


class RestoreBestEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping``, plus: keep a copy of the weights of the best epoch
    and put them back when training ends — because it stopped early or because
    ``max_epochs`` was reached after the best epoch.

    Lightning's own callback stops but leaves the *last* epoch's weights in the model,
    so whatever runs next (``trainer.test``, saving the model) would use weights that
    are up to ``patience`` epochs past the best. After this callback, ``best_epoch`` is
    the epoch whose weights the model holds and ``restored_best`` says whether they
    had to be put back.

    The best weights, epoch, counter and score are in ``state_dict``, so a resumed run
    restores the right weights too.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.best_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.restored_best = False
        self.last_checked_epoch: int | None = None

    def _run_early_stopping_check(self, trainer) -> None:
        before = float(self.best_score)  # a host float: best_score moves to the metric's device
        super()._run_early_stopping_check(trainer)
        self.last_checked_epoch = trainer.current_epoch
        if float(self.best_score) != before:  # improved this epoch
            self.best_epoch = trainer.current_epoch
            module = trainer.lightning_module
            self.best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()
            }

    def on_train_end(self, trainer, pl_module) -> None:
        # The model holds the weights validated last; put the best ones back if they differ.
        if self.best_weights is not None and self.best_epoch != self.last_checked_epoch:
            pl_module.load_state_dict(self.best_weights)
            self.restored_best = True

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(best_epoch=self.best_epoch, best_weights=copy.copy(self.best_weights))
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.best_epoch = state_dict.pop("best_epoch", None)
        self.best_weights = state_dict.pop("best_weights", None)
        super().load_state_dict(state_dict)
