"""How a command ends: one wrapper for ``train.py`` and ``eval.py`` (:func:`run_task`).

- A user error (bad value, missing file, divergence) is one line and exit code 1; in a
  multirun the job is recorded (``metrics.json`` with ``status`` and ``reason``) and the
  sweep goes on with the next job. ``HYDRA_FULL_ERROR=1`` shows the traceback.
- A signal (SIGTERM, Ctrl-C) stops the run resumably and exits 128 + the signal number,
  also in a multirun: the sweep does not start its next job.
- Resuming a finished run says so and exits 0 without writing anything.
- A bug (an error that is not the user's) is Hydra's usual traceback.

Torch-free until the work itself imports it: a refused config exits in about a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from descentlab.errors import (
    RunAlreadyFinished,
    RunInterrupted,
    failure_reason,
    one_line,
    user_error,
)
from descentlab.run.runtime import SWEEP_GONE


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def leave_process_group() -> None:
    """Destroy the DDP process group a run created, before the interpreter exits: left to
    the interpreter's teardown, gloo's threads could abort a rank ("terminate called without
    an active exception", exit -6) after its run had finished."""
    torch = sys.modules.get("torch")  # never imported: no group to leave
    if (
        torch is not None
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    ):
        torch.distributed.destroy_process_group()


def run_task(
    work: Callable[[], dict[str, Any]],
    cfg: DictConfig,
    metric: str | Callable[[dict[str, Any]], str] | None,
    card: bool = False,
) -> float | None:
    """Run ``work()``; end as the module docstring says; return its ``metric`` for Hydra's
    sweepers (``optimized_metric``; a function of the metrics names it), or None. ``card``:
    a job recorded here gets its run card too (``train.py``'s)."""
    from descentlab.run import job
    from descentlab.run.outputs import write_metrics
    from descentlab.run.run_dir import remove_if_empty

    output_dir = Path(cfg.paths.output_dir)
    try:
        metrics = work()
    except RunAlreadyFinished as done:
        print(f"descentlab: {done}", file=sys.stderr)
        remove_if_empty(output_dir)
        return None
    except RunInterrupted as stop:
        if job.is_rank_zero():  # once, not once per rank
            print(f"descentlab: {stop}", file=sys.stderr)
        if SWEEP_GONE.is_set():  # a joblib worker whose sweep was killed: nobody to return to
            sys.stderr.flush()
            os._exit(stop.exit_code)
        sys.exit(stop.exit_code)
    except Exception as err:
        shown = user_error(err)
        full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
        if not in_multirun():
            if shown is None or full_error:
                raise
            print(f"descentlab: error: {one_line(str(shown))}", file=sys.stderr)
            remove_if_empty(output_dir)
            sys.exit(1)
        # A sweep records the failed job and goes on.
        if shown is None or full_error:
            import traceback

            traceback.print_exc()
        reason = failure_reason(shown or err)
        print(
            f"descentlab: error: {reason} (job recorded in its metrics.json; the sweep goes on)",
            file=sys.stderr,
        )
        if not (output_dir / "metrics.json").is_file():
            failed = {"status": "failed", "reason": reason}
            try:
                write_metrics(output_dir / "metrics.json", failed)
            except OSError:
                pass
            else:
                if card:
                    from descentlab.run.card import write as write_card

                    write_card(cfg, failed)
        return None
    finally:
        leave_process_group()
    if callable(metric):
        metric = metric(metrics)
    value = metrics.get(metric or "")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
