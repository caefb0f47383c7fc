"""Early stopping that leaves the model with its best weights (Keras' restore_best_weights)."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

log = logging.getLogger(__name__)


class RestoreBestEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping``, plus: put the best epoch's weights back when training
    ends — because it stopped early or because ``max_epochs`` was reached after the best epoch.

    Lightning's own callback stops but leaves the *last* epoch's weights in the model,
    so whatever runs next (``trainer.test``, saving the model) would use weights that
    are up to ``patience`` epochs past the best. After this callback, ``best_epoch`` is
    the epoch whose weights the model holds and ``restored_best`` says whether they
    had to be put back.

    The best weights are stored once, in the best checkpoint (a ``ModelCheckpoint`` on
    the same metric, ``checkpoints/best.ckpt``), never in every checkpoint: the state
    saved here is Lightning's (counter, best score) plus ``best_epoch``. While the
    process runs a CPU copy of the best weights is kept in memory (a restore then needs
    no file); a resumed run restores them from the best checkpoint instead.
    """

    def __init__(self, *args, **kwargs):
        # strict=False: the run checks the monitor against what the task logs before
        # training, so a missing value means an epoch that ran no validation (a
        # trainer.max_steps or max_time cut): no check then, instead of a RuntimeError
        kwargs.setdefault("strict", False)
        super().__init__(*args, **kwargs)
        self.best_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None  # this process's copy only
        self.restored_best = False
        self.last_checked_epoch: int | None = None
        self.best_step: int | None = None  # trainer.global_step when the best weights were seen
        self._ended_on_best = False

    # Lightning runs its check from one of these two public hooks (which one depends on
    # check_on_train_epoch_end); each is wrapped to see what the check did, through the
    # callback's public state, so nothing private of Lightning's is overridden.
    def on_validation_end(self, trainer, pl_module) -> None:
        before = self._check_state()
        super().on_validation_end(trainer, pl_module)
        self._after_check(trainer, before)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        before = self._check_state()
        super().on_train_epoch_end(trainer, pl_module)
        self._after_check(trainer, before)

    def _check_state(self) -> tuple[float, int, int]:
        # a host float: best_score moves to the metric's device
        return float(self.best_score), self.wait_count, self.stopped_epoch

    def _after_check(self, trainer, before: tuple[float, int, int]) -> None:
        """After a check (best score, wait count or stop changed): note it; keep the weights
        of an improved epoch. A hook that ran no check changes none of the three."""
        if self._check_state() == before:
            return
        self.last_checked_epoch = trainer.current_epoch
        if float(self.best_score) != before[0]:  # improved this epoch
            self.best_epoch, self.best_step = trainer.current_epoch, trainer.global_step
            module = trainer.lightning_module
            self.best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()
            }

    @property
    def holds_best(self) -> bool:
        """True once training ended with the model holding ``best_epoch``'s weights."""
        return self.best_epoch is not None and (self.restored_best or self._ended_on_best)

    def _stepped_since_best(self, trainer) -> bool:
        """Whether an optimizer step came after the best weights: epochs of patience, but
        also epochs trained without a validation (``trainer.check_val_every_n_epoch=2``,
        a ``max_steps`` cut), which a comparison of epochs would miss."""
        if self.best_step is None:  # a checkpoint from before best_step was kept
            return self.best_epoch != self.last_checked_epoch
        return trainer.global_step != self.best_step

    def on_train_end(self, trainer, pl_module) -> None:
        # The model holds the weights of the last step; put the best ones back if they differ.
        if self.best_epoch is None:
            return
        if not self._stepped_since_best(trainer):
            self._ended_on_best = True
            return
        weights = self.best_weights or self._weights_from_best_checkpoint(trainer)
        if weights is None:
            log.warning(
                "early stopping: the weights of epoch %s are neither in memory nor in a best "
                "checkpoint on %s; the model keeps the last epoch's",
                self.best_epoch,
                self.monitor,
            )
            self.best_epoch = self.last_checked_epoch
            return
        pl_module.load_state_dict(weights)
        self.restored_best = True

    def _weights_from_best_checkpoint(self, trainer) -> dict[str, torch.Tensor] | None:
        """The state_dict of a best checkpoint on the same metric, if it is ``best_epoch``'s."""
        for callback in trainer.checkpoint_callbacks:
            if not (
                isinstance(callback, ModelCheckpoint)
                and callback.monitor == self.monitor
                and callback.mode == self.mode
                and callback.best_model_path
            ):
                continue
            checkpoint = trainer.strategy.checkpoint_io.load_checkpoint(callback.best_model_path)
            if checkpoint.get("epoch") == self.best_epoch:
                return checkpoint["state_dict"]
        return None

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(
            best_epoch=self.best_epoch,
            last_checked_epoch=self.last_checked_epoch,
            best_step=self.best_step,
        )
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.best_epoch = state_dict.pop("best_epoch", None)
        self.last_checked_epoch = state_dict.pop("last_checked_epoch", None)
        self.best_step = state_dict.pop("best_step", None)
        # checkpoints written before the lean format carry a copy of the weights: use it
        self.best_weights = state_dict.pop("best_weights", None)
        configured = self.patience
        super().load_state_dict(state_dict)
        # Lightning restores the checkpoint's patience too; a resume may change callbacks
        # (callbacks.early_stopping.patience=...), and the run's config is the one to follow
        self.patience = configured
