"""Hydra callbacks: guard the run dir before Hydra writes into it; summarize a sweep.

Configured under ``hydra.callbacks`` (configs/hydra/default.yaml). They run in the
launching process, before Hydra writes ``.hydra/`` and ``train.log`` into the run dir,
which is why the one-writer lock is taken here and not in ``train.run``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from descentlab import run_dir
from descentlab.errors import DescentlabError


def _fail(err: DescentlabError) -> None:
    print(f"descentlab: error: {err}", file=sys.stderr)
    sys.exit(1)


class RunDirGuard(Callback):
    """Lock the run dir (or the sweep dir) for this process; refuse a fresh run into a
    run dir that already holds a run (resume it with ``ckpt_path=last`` instead)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not run_dir.is_rank_zero():
            return
        path = Path(str(config.hydra.run.dir))
        try:
            run_dir.lock(path)
            if not config.get("ckpt_path") and run_dir.holds_a_run(path):
                raise run_dir.RunDirError(
                    f"run dir {path.resolve()} already holds a run: resume it with ckpt_path=last, "
                    f"or choose another hydra.run.dir (its results would be overwritten)"
                )
        except DescentlabError as err:
            _fail(err)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not run_dir.is_rank_zero():
            return
        try:
            run_dir.lock(Path(str(config.hydra.sweep.dir)))
        except DescentlabError as err:
            _fail(err)


class SweepSummary(Callback):
    """After a multirun, one line per job that did not complete, and a count."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, str, str]] = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        output_dir = Path(str(config.hydra.runtime.output_dir))
        status, reason = "failed", "no metrics.json"
        try:
            metrics = json.loads((output_dir / "metrics.json").read_text())
            status, reason = metrics.get("status", "completed"), metrics.get("reason", "")
        except (OSError, ValueError):
            pass
        self.jobs.append((output_dir.name, status, reason))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        bad = [(name, status, reason) for name, status, reason in self.jobs
               if status not in ("completed", "early_stopped")]  # fmt: skip
        for name, status, reason in bad:
            print(f"descentlab: job {name} {status}: {reason}", file=sys.stderr)
        print(
            f"descentlab: sweep finished: {len(self.jobs) - len(bad)} of {len(self.jobs)} jobs "
            f"completed; results in {config.hydra.sweep.dir}",
            file=sys.stderr,
        )
