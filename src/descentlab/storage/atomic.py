"""Write a file so that a reader (or a crash) never sees half of it: temporary file, then rename."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomically(path: str | Path, write) -> None:
    """``write(tmp_path)`` creates the content; ``os.replace`` then swaps it in (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj: Any, sort_keys: bool = True) -> None:
    """``obj`` as indented JSON (keys sorted unless ``sort_keys=False``), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)``, atomically."""
    import torch

    write_atomically(path, lambda tmp: torch.save(obj, tmp))
