"""Write a file so that a reader (or a crash) never sees half of it: temporary file, then rename."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before the rename: ``.NAME.tmp-PID`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Remove ``.NAME.tmp-PID`` files of ``path`` left by a process that no longer runs.

    A writer killed between creating its temporary file and the rename (kill -9 while
    ``last.ckpt`` was being written) leaves a file as large as a checkpoint that nothing
    else would ever remove. A temporary file of a running process is left alone (the run
    dir's lock keeps a second run out, but another program may be writing).
    """
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            stale.unlink(missing_ok=True)


def write_atomically(path: str | Path, write) -> None:
    """``write(tmp_path)`` creates the content; ``os.replace`` then swaps it in (atomic on POSIX).
    A dead writer's temporary file of ``path`` is removed (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    remove_stale_temporaries(path)


def write_json(path: str | Path, obj: Any, sort_keys: bool = True) -> None:
    """``obj`` as indented JSON (keys sorted unless ``sort_keys=False``), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)``, atomically."""
    import torch

    write_atomically(path, lambda tmp: torch.save(obj, tmp))
