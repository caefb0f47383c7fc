"""``hydra/launcher=submitit_slurm``: Hydra's submitit SLURM launcher, with one change.

When ``sbatch`` refuses the sweep's array job (a partition that does not exist, GPUs on a
CPU partition, more CPUs than a node has, a time limit over the partition's), submitit
prints sbatch's message and raises with a traceback; here it is one line,
``descentlab: error: ...`` naming what SLURM said, and exit 1. A request that
sbatch accepts but no node of the partition can ever meet (more CPUs per node than a node
has, without ``EnforcePartLimits``) pends for ever with the reason ``PartitionConfig`` while
submitit waits without a word: a watcher polls ``squeue`` for the sweep's jobs, and such a
job ends the sweep in one line (its jobs cancelled), exit 1. A job that ends without a
result (``scancel``, a failed node, killed at its time limit) is one line too: without
SLURM accounting, submitit cannot learn the job's fate and would wait for ever. Everything
else is the plugin's: same options, same array job, same requeue on SIGUSR1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

import descentlab.config  # noqa: F401  (resolvers: submitit's workers unpickle this module first)
from descentlab.errors import one_line

SBATCH = "sbatch: "
# squeue's reasons for a job that no node of its partition can run, whatever else finishes
NEVER_STARTS = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints")
# squeue's states of a job that is over (kept for MinJobAge): with no result file, the job
# never reported back (a job that ran to its end, even failing, leaves submitit's result)
ENDED = ("CANCELLED", "FAILED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY")
ENDED += ("PREEMPTED", "TIMEOUT")
WATCH_EVERY_S = 3.0
FINISH_THE_SWEEP = (
    "the sweep's other jobs are cancelled; run the same command again to finish the sweep "
    "(an interrupted job resumes from its checkpoints/last.ckpt)"
)


class _WithoutSbatchErrors:
    """stderr, less the sbatch messages submitit prints right before it raises (the one-line
    error repeats them)."""

    def __init__(self, stream):
        self._stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        dropped, self._dropped = self._dropped, False
        if text.startswith(SBATCH):
            self._dropped = True
            return len(text)
        if dropped and text == "\n":  # print()'s line end after a dropped message
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def refusal(message: str) -> str:
    """sbatch's error lines as one: ``sbatch: error: A\\nsbatch: error: B`` -> ``A; B``."""
    reasons = []
    for line in str(message).splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", SBATCH):
            if line.startswith(prefix):
                line = line[len(prefix) :]
                break
        if line and line not in reasons:
            reasons.append(line)
    return one_line("; ".join(reasons)) or "no message"


def submitted_job_ids(submitit_dir: Path) -> list[str]:
    """The SLURM job ids of a sweep: submitit's folder names (``123`` or ``123_4``)."""
    ids = set()
    for folder in submitit_dir.iterdir() if submitit_dir.is_dir() else []:
        match = re.fullmatch(r"(\d+)(_\d+)?", folder.name)
        if match:
            ids.add(match.group(1))
    return sorted(ids)


def queue_rows(job_ids: list[str]) -> list[tuple[str, str, str]] | None:
    """(job, state, reason) of the sweep's jobs from ``squeue``, finished ones included;
    None when squeue cannot be reached for a moment (look again later)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [tuple(line.strip().split("|", 2)) for line in out.splitlines() if line.count("|") == 2]


def never_starting(rows) -> tuple[str, str] | None:
    """(job, reason) of a pending job that can never start; None if none."""
    for job, state, reason in rows:
        if state == "PENDING" and reason in NEVER_STARTS:
            return job, reason
    return None


def has_result(submitit_dir: Path, job: str) -> bool:
    """Whether submitit's job ``job`` (``123`` or ``123_4``) wrote its result file."""
    return any((submitit_dir / job).glob("*_result.pkl"))


def ended_without_result(rows, submitit_dir: Path) -> tuple[str, str] | None:
    """(job, state) of a job that is over and left no result: nothing will ever report it."""
    for job, state, _ in rows:
        if state in ENDED and not has_result(submitit_dir, job):
            return job, state
    return None


class _Watcher(threading.Thread):
    """Ends the sweep in one line when one of its jobs can never start, or ended without a
    result (see the module)."""

    def __init__(self, submitit_dir: Path, partition: str | None):
        super().__init__(daemon=True, name="descentlab-slurm-watcher")
        self.submitit_dir, self.partition = submitit_dir, partition
        self.done = threading.Event()
        # a sweep finished by running its command again: the earlier jobs are not this one's
        self.earlier = set(submitted_job_ids(submitit_dir))

    def problem(self, job_ids: list[str], seen: set) -> str | None:
        rows = queue_rows(job_ids)
        if not rows:
            return None
        found = never_starting(rows)
        if found is not None:
            job, reason = found
            where = f"partition {self.partition}" if self.partition else "its partition"
            return (
                f"job {job} can never start ({reason}): no node of {where} has what it asks "
                "for (CPUs per task × tasks, memory, GPUs, time); ask for less (e.g. "
                "hydra.launcher.cpus_per_task=1); the sweep's jobs are cancelled"
            )
        ended = ended_without_result(rows, self.submitit_dir)
        if ended is None:
            return None
        if ended not in seen:  # a result file on a shared file system may lag a moment
            seen.add(ended)
            return None
        job, state = ended
        return (
            f"job {job} ended {state} without a result (scancel, a failed node, its time "
            f"limit); {FINISH_THE_SWEEP}"
        )

    def run(self) -> None:
        seen: set = set()
        while not self.done.wait(WATCH_EVERY_S):
            job_ids = [j for j in submitted_job_ids(self.submitit_dir) if j not in self.earlier]
            problem = self.problem(job_ids, seen) if job_ids else None
            if problem is None or self.done.is_set():
                continue
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)
            print(
                f"descentlab: error: hydra/launcher=submitit_slurm: {problem}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(1)  # the main thread waits inside submitit, which would wait for ever


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """The plugin's SLURM launcher; a refused submission, or a job that can never start, is
    one line and exit 1."""

    def launch(self, job_overrides, initial_job_idx):
        from submitit.core.utils import FailedJobError, FailedSubmissionError, UncompletedJobError

        folder = Path(str(self.params["submitit_folder"])).parent  # .../.submitit/%j
        watcher = _Watcher(folder, self.params.get("partition"))
        watcher.start()
        try:
            with redirect_stderr(_WithoutSbatchErrors(sys.stderr)):
                return super().launch(job_overrides, initial_job_idx)
        except (FailedJobError, FailedSubmissionError) as err:
            if SBATCH not in str(err) and not isinstance(err, FailedSubmissionError):
                raise  # not sbatch's refusal (e.g. scontrol): the plugin's report
            partition = self.params.get("partition")
            where = f" (partition {partition})" if partition else ""
            print(
                f"descentlab: error: hydra/launcher=submitit_slurm: sbatch refused the jobs"
                f"{where}: {refusal(str(err))}",
                file=sys.stderr,
            )
            sys.exit(1)
        except UncompletedJobError as err:
            # with SLURM accounting submitit learns that a job ended without a result (the
            # watcher above says so first where it can)
            print(
                f"descentlab: error: hydra/launcher=submitit_slurm: {one_line(str(err))}; "
                f"{FINISH_THE_SWEEP}",
                file=sys.stderr,
            )
            subprocess.run(["scancel", *submitted_job_ids(folder)], capture_output=True)
            sys.exit(1)
        finally:
            watcher.done.set()
