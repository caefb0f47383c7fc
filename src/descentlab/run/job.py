"""One run dir per distributed job: the run name every rank of a job agrees on.

Each rank of a job composes the config itself, so a run dir named by the time
(``${now:...}``) differs between ranks by microseconds. ``${run_name:}`` (the run dir's
name in configs/hydra/default.yaml) gives every rank of one job the same name:

- Lightning's own launcher (``trainer=ddp_cpu``, ``trainer=ddp``) starts ranks 1.. as
  children of rank 0 (with ``LOCAL_RANK`` set): rank 0 puts its name in
  ``DESCENTLAB_RUN_NAME``, with its PID, and such a child takes it when its parent's PID
  matches (an unrelated later run does not).
- torchrun (one node or many): rank 0 publishes its name in the store torchrun's agent
  already serves to every worker (``MASTER_ADDR:MASTER_PORT``); the others wait for it.
  Where that store is not shared with the workers, the name is built from the
  rendezvous id (``TORCHELASTIC_RUN_ID``; give ``--rdzv-id`` to multi-node runs).
- SLURM (``srun``, or Hydra's submitit launcher): every task of a job step has the same
  ``SLURM_JOB_ID`` and ``SLURM_STEP_ID``; the name is built from them (a requeued job
  keeps its run dir, see :func:`requeued`).
- otherwise, the time to the microsecond.

Only rank 0 writes into the run dir (``.hydra/``, ``metrics.json``, checkpoints); other
ranks log to ``<job>_rank<N>.log`` (``${rank_suffix:}``).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

ENV_KEY = "DESCENTLAB_RUN_NAME"
STORE_KEY = "descentlab/run_name"
STORE_TIMEOUT = datetime.timedelta(minutes=5)


def global_rank() -> int:
    """This process's rank as its launcher says; 0 if none. The one rank rule of the package.

    ``RANK`` (torchrun) is the global rank. Otherwise any non-zero ``SLURM_PROCID`` (srun's
    tasks) or ``LOCAL_RANK`` (the children Lightning's own launcher starts, which inherit
    rank 0's ``SLURM_PROCID=0`` inside a one-task SLURM job) makes a non-zero rank.
    """
    rank = os.environ.get("RANK")
    if rank not in (None, ""):
        return int(rank)
    return max(int(os.environ.get(key) or 0) for key in ("SLURM_PROCID", "LOCAL_RANK"))


def is_rank_zero() -> bool:
    """True in the process that writes the run dir (rank 0, or no distributed launcher)."""
    return global_rank() == 0


def _timestamp() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


_chosen: str | None = None  # this process's name: Hydra may resolve it more than once


def _from_parent() -> str | None:
    """The name rank 0 of Lightning's launcher handed down to this child (ranks 1..)."""
    name, _, pid = os.environ.get(ENV_KEY, "").rpartition("@")
    launched = os.environ.get("LOCAL_RANK", "0") != "0"  # Lightning sets it for its children
    return name if name and launched and pid == str(os.getppid()) else None


def _torchrun_store() -> bool:
    """Under torchrun, with its agent's store open to the workers (torchrun's default)."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_ADDR" in os.environ


def _torchrun_id() -> str | None:
    """torchrun's rendezvous id (``--rdzv-id``, a fresh one with ``--standalone``), if set."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return f"torchrun-{run_id}" if run_id not in ("", "none") else None


def _shared_through_torchrun(name: str) -> str:
    """Rank 0's ``name``, through the store of torchrun's agent."""
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=STORE_TIMEOUT,
    )
    if global_rank() == 0:
        store.set(STORE_KEY, name)
        return name
    return store.get(STORE_KEY).decode()


def _slurm_job() -> str | None:
    job = os.environ.get("SLURM_JOB_ID")
    if not job or int(os.environ.get("SLURM_NTASKS", "1")) < 2:
        return None  # one task: nothing to agree on, and sbatch scripts run many of them
    return f"slurm-{job}.{os.environ.get('SLURM_STEP_ID', '0')}"


def run_name() -> str:
    """The run dir name of this job, the same on every rank (see the module docstring)."""
    global _chosen
    if _chosen is None:
        _chosen = _from_parent()
    if _chosen is None:
        if _torchrun_store():
            _chosen = _shared_through_torchrun(_timestamp())
        else:
            _chosen = _torchrun_id() or _slurm_job() or _timestamp()
        os.environ[ENV_KEY] = f"{_chosen}@{os.getpid()}"  # for Lightning's children
    return _chosen


def rank_suffix() -> str:
    """``""`` on rank 0, ``_rank<N>`` elsewhere: one log file per rank."""
    rank = global_rank()
    return f"_rank{rank}" if rank else ""


def rank_zero_only(value):
    """``value`` on rank 0, None elsewhere (e.g. ``hydra.output_subdir``: rank 0 writes .hydra/)."""
    return value if is_rank_zero() else None


# The two below are here, not in descentlab.run.resume, because the run-dir guard calls them
# before any torch import: a run refused at validation then exits in about a second.
def requeued() -> bool:
    """True in a SLURM job that was requeued (preempted or timed out, then started again)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def requeued_checkpoint(output_dir: str | Path) -> str | None:
    """In a requeued SLURM job, the run dir's newest resumable checkpoint: ``last.ckpt``, or
    the ``hpc_ckpt_N.ckpt`` Lightning's own SLURM requeue wrote when that is newer."""
    if not requeued():
        return None
    output_dir = Path(output_dir)
    candidates = [output_dir / "checkpoints" / "last.ckpt", *output_dir.glob("hpc_ckpt_*.ckpt")]
    existing = [p for p in candidates if p.is_file()]
    return str(max(existing, key=os.path.getmtime)) if existing else None
