"""``hydra/launcher=submitit_slurm``: Hydra's submitit SLURM launcher, with one change.

When ``sbatch`` refuses the sweep's array job (a partition that does not exist, GPUs on a
CPU partition, more CPUs than a node has, a time limit over the partition's), submitit
prints sbatch's message and raises with a traceback; here it is one line,
``descentlab: error: ...`` naming what SLURM said, and exit 1. A request that
sbatch accepts but no node of the partition can ever meet (more CPUs per node than a node
has, without ``EnforcePartLimits``) pends for ever with the reason ``PartitionConfig`` while
submitit waits without a word: a watcher polls ``squeue`` for the sweep's jobs, and such a
job ends the sweep in one line (its jobs cancelled), exit 1. Everything else is the
plugin's: same options, same array job, same requeue on SIGUSR1.
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
WATCH_EVERY_S = 3.0


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


def never_starting(job_ids: list[str]) -> tuple[str, str] | None:
    """(job, reason) of a pending job that can never start, from ``squeue``; None if none."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-t", "PD", "-j", ",".join(job_ids), "-o", "%i|%r"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # squeue unreachable for a moment: look again later
    for line in out.splitlines():
        job, _, reason = line.strip().partition("|")
        if reason in NEVER_STARTS:
            return job, reason
    return None


class _Watcher(threading.Thread):
    """Ends the sweep in one line when one of its jobs can never start (see the module)."""

    def __init__(self, submitit_dir: Path, partition: str | None):
        super().__init__(daemon=True, name="descentlab-slurm-watcher")
        self.submitit_dir, self.partition = submitit_dir, partition
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(WATCH_EVERY_S):
            job_ids = submitted_job_ids(self.submitit_dir)
            found = never_starting(job_ids) if job_ids else None
            if found is None:
                continue
            job, reason = found
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)
            where = f"partition {self.partition}" if self.partition else "its partition"
            print(
                f"descentlab: error: hydra/launcher=submitit_slurm: job {job} can never start "
                f"({reason}): no node of {where} has what it asks for (CPUs per task × "
                "tasks, memory, GPUs, time); ask for less (e.g. hydra.launcher.cpus_per_task=1)"
                "; the sweep's jobs are cancelled",
                file=sys.stderr,
                flush=True,
            )
            os._exit(1)  # the main thread waits inside submitit, which would wait for ever


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """The plugin's SLURM launcher; a refused submission, or a job that can never start, is
    one line and exit 1."""

    def launch(self, job_overrides, initial_job_idx):
        from submitit.core.utils import FailedJobError, FailedSubmissionError

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
        finally:
            watcher.done.set()
