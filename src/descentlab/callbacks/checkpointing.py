"""The ``last.ckpt`` writer: Lightning's ModelCheckpoint without the one state it cannot resume."""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for ``last.ckpt`` (every N epochs and/or every N training steps),
    saved at the end of each training epoch, validated or not.

    A step-based save that falls on the last batch of an epoch would capture the state
    "epoch trained, not yet validated". Lightning resumes such a checkpoint by skipping
    that epoch's validation, so early stopping finds no ``val/loss`` and the run can
    never be resumed. This callback moves that one save to the end of the same epoch
    (after validation and early stopping), a state that resumes exactly; every other
    save is Lightning's own.
    """

    def __init__(
        self,
        *args,
        every_n_train_steps: int | None = None,
        every_n_epochs: int | None = None,
        **kwargs,
    ):
        # At every training epoch's end (after its validation, when one runs), whatever
        # trainer.check_val_every_n_epoch: Lightning's default for that setting saves after
        # validations only, so last.ckpt fell behind by the unvalidated epochs and a resume
        # of a finished run trained them again.
        kwargs.setdefault("save_on_train_epoch_end", True)
        super().__init__(
            *args, every_n_train_steps=every_n_train_steps, every_n_epochs=every_n_epochs, **kwargs
        )
        self.step_interval = every_n_train_steps or 0
        self.epoch_interval = every_n_epochs or 0
        self._deferred = False
        self._cut_short = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if 0 < trainer.max_steps <= trainer.global_step and not last_batch:
            # trainer.max_steps ends training mid-epoch: save this mid-epoch state (a resume
            # with a larger max_steps continues with the next batch), not the end-of-epoch
            # one, which would mark the epoch done and skip the rest of it on resume
            trainer.save_checkpoint(self.format_checkpoint_name({}), self.save_weights_only)
            self._cut_short = True
            return
        if last_batch:
            due = self.step_interval > 0 and trainer.global_step % self.step_interval == 0
            self._deferred = self._deferred or due
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._cut_short:  # saved at the cut (above): this epoch did not end
            self._cut_short = False
            return
        super().on_train_epoch_end(trainer, pl_module)
        deferred, self._deferred = self._deferred, False
        epoch_save_due = (
            self.epoch_interval > 0 and (trainer.current_epoch + 1) % self.epoch_interval == 0
        )
        if deferred and not epoch_save_due:
            path = self.format_checkpoint_name({})
            trainer.save_checkpoint(path, self.save_weights_only)
            self.best_model_path = self.last_model_path = path
