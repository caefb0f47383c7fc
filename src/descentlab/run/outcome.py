"""How a phase of a run ended, turned into the status ``metrics.json`` records.

Three ways a phase ends other than normally, handled in one place (:func:`recorded`):

- a signal: Lightning ends fit/test with ``SystemExit`` after Ctrl-C (and after its own
  SIGTERM handling, e.g. in the sanity check): recorded as ``interrupted``, naming the
  signal, and raised as :class:`RunInterrupted` (exit 128 + signal number);
- a divergence (:class:`DivergenceError`) or a stop requested by a callback
  (:class:`RunInterrupted`): recorded as ``diverged`` / ``interrupted``;
- any other failure: recorded as ``failed`` with the reason in one line.

Only rank 0 writes; a disk that made the run fail may still be full, so a failed write of
the record is not a second error.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from descentlab.errors import DivergenceError, RunInterrupted, failure_reason
from descentlab.run import card
from descentlab.run.outputs import finish_loggers, task_fields, write_metrics


@contextmanager
def stop_signals(stop_request) -> Iterator[None]:
    """SIGTERM sets ``stop_request`` (acted on at the next step boundary) for the block."""
    previous = stop_request.install()
    try:
        yield
    finally:
        stop_request.restore(previous)


def _status(err: BaseException) -> str:
    if isinstance(err, DivergenceError):
        return "diverged"
    return "interrupted" if isinstance(err, RunInterrupted) else "failed"


@contextmanager
def recorded(
    parts, on_signal: Callable[[str], dict[str, Any]], record_failures: bool = True
) -> Iterator[None]:
    """Record how the block (fit, or test) ended unless it ended normally.

    ``on_signal(reason)`` gives the metrics of a run stopped by a signal; a failure is
    recorded with the kept epoch's metrics, its status and reason (when ``record_failures``).
    """
    trainer = parts.trainer
    try:
        with card.timed(parts):  # the phase's seconds, for the run card
            yield
    except SystemExit:
        if not trainer.interrupted:
            raise
        signum = parts.stop_request.signum or signal.SIGINT
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"
        reason = f"stopped by {name} at epoch {trainer.current_epoch}, step {trainer.global_step}"
        if trainer.is_global_zero:
            stopped = on_signal(reason)
            write_metrics(parts.output_dir / "metrics.json", stopped)
            card.write(parts.cfg, stopped, parts)
        raise RunInterrupted(reason, signum=signum) from None
    except Exception as err:
        if record_failures and trainer.is_global_zero:
            from descentlab.run.kept import epoch_metrics

            failed = {
                **epoch_metrics(trainer, parts.history),
                **task_fields(parts.model),
                "status": _status(err),
                "reason": failure_reason(err),
            }
            try:
                finish_loggers(parts.loggers, summary=failed, hparams=parts.hparams)
                write_metrics(parts.output_dir / "metrics.json", failed)
                card.write(parts.cfg, failed, parts)
            except OSError:
                pass
        raise
