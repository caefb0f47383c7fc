"""Finishing a sweep: re-running a multirun's command in its own sweep dir.

A multirun killed part-way (kill -9, a lost node, Ctrl-C) leaves its finished jobs, perhaps
one job with a ``last.ckpt`` and no finished ``metrics.json``, and jobs never started.
Running the SAME command again with the same ``hydra.sweep.dir`` finishes it: Hydra numbers
the jobs of one command the same way, so job ``N`` finds its own dir, and each job does
what its dir calls for (:func:`plan`):

- ``skip``: it finished before (``completed``, ``early_stopped``, ``max_steps``,
  ``max_time``): nothing is trained, its recorded objective goes back to the sweeper;
- ``resume``: it was interrupted or killed after writing ``checkpoints/last.ckpt``: it
  resumes from there (``ckpt_path=last``), as a single run would;
- ``keep``: it failed or diverged: left as it is, reported; ``rerun_failed=true`` (see
  ``configs/train.yaml``) runs it again instead, its earlier attempt moved into
  ``previous_attempt_<k>/`` of its dir (nothing is lost);
- ``run``: nothing to resume (never started, or stopped before any checkpoint).

Any other command into a used sweep dir is refused (:func:`same_command`); the sweep's
summary counts what was skipped, resumed and run (:func:`count_actions`).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from descentlab.run import FINISHED

ACTION_FILE = ".sweep_action"  # what the job did with its dir, for the sweep's summary
FAILED = ("failed", "diverged")
# keys that may differ between the first command and the one that finishes the sweep
CONTINUATION_KEYS = ("rerun_failed",)


def recorded_overrides(sweep_dir: Path) -> list[str] | None:
    """The task overrides of the multirun recorded in ``sweep_dir/multirun.yaml``."""
    import yaml

    try:
        recorded = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
        return list(recorded["hydra"]["overrides"]["task"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def _comparable(overrides) -> list[str]:
    return [
        str(o) for o in overrides if str(o).lstrip("+~").split("=", 1)[0] not in CONTINUATION_KEYS
    ]


def same_command(sweep_dir: Path, overrides) -> bool:
    """Whether ``overrides`` (this command's) are the ones the sweep in ``sweep_dir`` ran."""
    recorded = recorded_overrides(sweep_dir)
    return recorded is not None and _comparable(recorded) == _comparable(overrides)


def status_of(job_dir: Path) -> str | None:
    try:
        return json.loads((job_dir / "metrics.json").read_text()).get("status", "completed")
    except (OSError, ValueError, AttributeError):
        return None


def plan(job_dir: Path, rerun_failed: bool) -> str:
    """``skip``, ``resume``, ``keep``, ``rerun`` or ``run``: see the module docstring."""
    status = status_of(job_dir)
    if status in FINISHED:
        return "skip"
    if status in FAILED:
        return "rerun" if rerun_failed else "keep"
    return "resume" if (job_dir / "checkpoints" / "last.ckpt").is_file() else "run"


def move_attempt_aside(job_dir: Path) -> Path:
    """Move a failed attempt's results into ``previous_attempt_<k>/`` of its dir."""
    k = 1
    while (job_dir / f"previous_attempt_{k}").exists():
        k += 1
    aside = job_dir / f"previous_attempt_{k}"
    aside.mkdir()
    for path in job_dir.iterdir():
        if path.name.startswith(("previous_attempt_", ".")) or path.suffix == ".log":
            continue  # earlier attempts, .hydra/, the lock, the log Hydra has opened
        shutil.move(str(path), aside / path.name)
    return aside


def record(job_dir: Path, action: str) -> None:
    (job_dir / ACTION_FILE).write_text(action + "\n")


def recorded_metrics(job_dir: Path) -> dict:
    try:
        metrics = json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def count_actions(job_dirs: list[Path]) -> Counter:
    """How many jobs skipped, resumed, kept, reran and ran (from their action files)."""
    counts: Counter = Counter()
    for job_dir in job_dirs:
        try:
            counts[(job_dir / ACTION_FILE).read_text().strip()] += 1
        except OSError:
            pass
    return counts


SAID = {
    "skip": "finished before ({status}): skipped",
    "keep": "{status} before: kept as it is (rerun_failed=true runs it again)",
    "resume": "interrupted before: resuming from its checkpoints/last.ckpt",
    "rerun": "{status} before: running it again (the earlier attempt is in {aside})",
}


def continue_job(cfg) -> dict | None:
    """In a multirun job, act on what the job's dir holds (:func:`plan`).

    Returns the recorded metrics of a job that is not run again (``skip``, ``keep``), else
    None after preparing ``cfg`` (``ckpt_path=last`` for ``resume``). Rank 0 only decides:
    a DDP job's other ranks are started by Lightning with the same config.
    """
    import sys

    from omegaconf import open_dict

    job_dir = Path(str(cfg.paths.output_dir))
    action = plan(job_dir, bool(cfg.get("rerun_failed", False)))
    status, aside = status_of(job_dir), None
    if action == "rerun":
        aside = move_attempt_aside(job_dir)
    if action in SAID:
        said = SAID[action].format(status=status, aside=aside)
        print(f"descentlab: job {job_dir.name} {said}", file=sys.stderr)
    from descentlab.run.job import requeued

    if not (action == "skip" and requeued()):
        # a job SLURM requeued after it had finished (the time-limit signal came as it ended)
        # was run by this sweep: its first action stands, the summary must not say "skipped"
        record(job_dir, {"skip": "skipped", "keep": "kept", "resume": "resumed"}.get(action, "ran"))
    if action in ("skip", "keep"):
        return recorded_metrics(job_dir)
    if action == "resume":
        with open_dict(cfg):
            cfg.ckpt_path = "last"
    return None
