"""SIGTERM (what SLURM, Kubernetes and ``kill`` send): stop at a step boundary, resumably."""

from __future__ import annotations

import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback, Checkpoint

from descentlab.errors import RunInterrupted


class StopRequest:
    """A flag raised by SIGTERM. The handler only records the request: the training
    loop acts on it at the next step boundary, where the state can be saved whole."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum, _frame) -> None:
        self.signum = signum

    def install(self):
        """Make this the SIGTERM handler; return the previous one (``None`` off the main thread)."""
        try:
            return signal.signal(signal.SIGTERM, self.handler)
        except ValueError:  # not the main thread (e.g. a notebook's worker): nothing to catch
            return None

    @staticmethod
    def restore(previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _StopOnRequest:
    """On SIGTERM, write ``last.ckpt`` at the next step boundary and stop the run.

    - Between two batches of an epoch: the checkpoint is the same mid-epoch state a
      step-based ``last.ckpt`` holds, and ``ckpt_path=last`` continues with the next batch.
    - During an epoch's last batch or its validation: the epoch is finished first, and the
      checkpoint is written after early stopping and the other checkpoints of that epoch
      (a :class:`Checkpoint` subclass added last runs after them), i.e. an end-of-epoch state.
    - If that epoch ends training anyway (early stopping, ``max_epochs``), the run finishes
      normally, test included; ``train.run`` then still exits 143 so that a sweep stops.

    All ranks of a DDP job stop at the same step: the request is or-reduced across ranks
    every batch (only when there are several). Lightning's own SIGTERM handling, which
    raises ``SystemExit(0)`` mid-loop, is replaced while training runs.
    """

    saves = True  # write last.ckpt before stopping

    def __init__(self, request: StopRequest, path: str | Path):
        self.request = request
        self.path = str(path)
        self._pending: str | None = None

    def _save(self, trainer) -> None:
        if self.saves:
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state, to resume

    def _take_over(self) -> None:
        # Lightning installs its own SIGTERM handler at the start of every fit/test (it
        # raises SystemExit(0) mid-loop); ours replaces it. Lightning's teardown puts back
        # what was there before it, i.e. the handler train.run installed: ours again.
        self.request.install()

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self._take_over()

    def on_train_start(self, trainer, pl_module) -> None:
        self._take_over()

    def on_test_start(self, trainer, pl_module) -> None:
        self._take_over()  # a SIGTERM during the test lets it finish (seconds), then exits 143
        if trainer.received_sigterm:
            # it came while Lightning set the test up, after Lightning's handler was installed
            # (ours ran too: the request is set): Lightning's test loop would stop at its next
            # batch on this flag. Lightning has no public way to take a SIGTERM back.
            self.request.signum = signal.SIGTERM
            trainer._signal_connector.received_sigterm = False

    def _requested(self, trainer) -> bool:
        asked = self.request.signum is not None
        if trainer.world_size > 1:
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
        return bool(asked)

    def _interrupted(self, where: str) -> RunInterrupted:
        if not self.saves:
            return RunInterrupted(
                f"stopped by SIGTERM {where}; trainer.enable_checkpointing=false: no checkpoint "
                "was written, nothing to resume",
                signum=self.request.signum or signal.SIGTERM,
            )
        return RunInterrupted(
            f"stopped by SIGTERM {where}; resume with ckpt_path=last from {self.path}",
            signum=self.request.signum or signal.SIGTERM,
            checkpoint=self.path,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # finish the epoch (validation, early stopping) first
        if self._requested(trainer):
            self._save(trainer)
            raise self._interrupted(
                f"between two training steps (epoch {trainer.current_epoch}, step {trainer.global_step})"
            )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        last_epoch = (
            trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        )
        if trainer.should_stop or last_epoch:
            return  # training ends here anyway: let the run finish (the test takes seconds)
        if self._requested(trainer):
            # Save now (the end-of-epoch state), stop when the next epoch starts: Lightning
            # sends the epoch's train/* to the loggers after these hooks, not before.
            self._save(trainer)
            self._pending = (
                f"at the end of epoch {trainer.current_epoch} (step {trainer.global_step})"
            )

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._pending is not None:
            where, self._pending = self._pending, None
            raise self._interrupted(where)


class GracefulStop(_StopOnRequest, Checkpoint):
    """On SIGTERM, write ``last.ckpt`` at the next step boundary and stop (see above); a
    :class:`Checkpoint`, so that Lightning runs it after the other checkpoint callbacks."""


class GracefulStopWithoutSaving(_StopOnRequest, Callback):
    """``trainer.enable_checkpointing=false``: Lightning accepts no :class:`Checkpoint`
    callback then, and nothing is saved; a SIGTERM still stops the run at a step boundary,
    recorded as interrupted."""

    saves = False
