"""One writer per run dir: a lock held for the life of the process, and what a run dir may hold.

The lock is ``RUN_DIR/.lock``, taken with ``filelock`` (``flock`` on POSIX, ``msvcrt`` on
Windows) and holding the owner's PID and host. The OS releases such a lock when its
process dies, however it dies (``kill -9`` included), so a lock left by a crash is simply
taken over: a stale file is detected by the lock being free, the PID is there for the
message. Only rank 0 of a distributed job takes it (all ranks of a job share the run dir).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout

from descentlab.errors import RunDirError

LOCK_NAME = ".lock"
_held: dict[Path, FileLock] = {}  # run dir -> its lock, held until the process exits
_created: set[Path] = set()  # run dirs this process created


def prepare(run_dir: str | Path) -> Path:
    """Create ``run_dir`` (or check it) and make sure it can be written, one line if not."""
    path = Path(run_dir).resolve()
    if path.exists() and not path.is_dir():
        raise RunDirError(
            f"run dir {path} is an existing file, not a directory: choose another hydra.run.dir"
        )
    if not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as err:
            raise RunDirError(f"cannot create run dir {path}: {err.strerror}") from None
        _created.add(path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError(f"run dir {path} is not writable: choose another hydra.run.dir")
    return path


def lock(run_dir: str | Path) -> None:
    """Take ``run_dir``'s lock for this process, or raise one line naming its holder."""
    path = prepare(run_dir)
    if path in _held:
        return
    lock_file = path / LOCK_NAME
    file_lock = FileLock(lock_file, thread_local=False)
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = lock_file.read_text(errors="replace").strip()
        except OSError:
            holder = ""
        raise RunDirError(
            f"run dir {path} is in use by {holder or 'another process'}: one run writes to a "
            f"run dir at a time; wait for it, or choose another hydra.run.dir"
        ) from None
    except OSError as err:
        raise RunDirError(f"cannot write {lock_file}: {err.strerror}") from None
    try:  # the holder, for the message another process shows (best effort: Windows may refuse)
        lock_file.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
    except OSError:
        pass
    _held[path] = file_lock


def holds_a_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` has a run's results: checkpoints, or a finished ``metrics.json``.

    A run that failed before writing any checkpoint (bad config, divergence at once, an
    early signal) leaves nothing to resume: a fresh run may take its place.
    """
    path = Path(run_dir)
    if any((path / "checkpoints").glob("*.ckpt")):
        return True
    try:
        status = json.loads((path / "metrics.json").read_text()).get("status", "completed")
    except (OSError, ValueError, AttributeError):
        return (path / "metrics.json").exists()
    from descentlab.run import FINISHED

    return status in FINISHED


def holds_a_sweep(sweep_dir: str | Path) -> bool:
    """True when ``sweep_dir`` already has a multirun's jobs."""
    path = Path(sweep_dir)
    return (path / "multirun.yaml").exists() or any(path.glob("*/metrics.json"))


def remove_if_empty(run_dir: str | Path) -> None:
    """Remove a run dir this process created when it holds only Hydra's own files."""
    path = Path(run_dir).resolve()
    if path not in _created or not path.is_dir():
        return
    # Hydra's job log is named after the script (train.log, eval.log) or a DDP process
    leftovers = {p.name for p in path.iterdir() if p.suffix != ".log"} - {".hydra", LOCK_NAME}
    if leftovers:
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)
