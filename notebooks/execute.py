"""Run the lecture's notebooks in full mode and save them with their outputs (``make notebooks``).

    python notebooks/execute.py                      # all of them
    python notebooks/execute.py 02_optimizers.ipynb  # some

Full mode: ``DESCENTLAB_FAST`` is unset and figures render inline (``MPLBACKEND`` unset),
so the saved notebooks show every figure and table on GitHub without running anything.
Each notebook's training runs write under ``logs/notebooks/<notebook>/``, emptied first.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
LIMIT_BYTES = 2_000_000  # a notebook's size with its outputs must stay well under this


def execute(path: Path) -> None:
    shutil.rmtree(HERE.parent / "logs" / "notebooks" / path.stem, ignore_errors=True)
    book = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # record_timing=False: no per-cell timestamps, so a re-run changes only what it shows
    NotebookClient(
        book,
        timeout=1800,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(HERE)}},
    ).execute()
    nbformat.write(book, path)
    size = path.stat().st_size
    print(f"{path.name}: {time.perf_counter() - start:.0f} s, {size / 1e6:.2f} MB", flush=True)
    if size > LIMIT_BYTES:
        sys.exit(f"{path.name} is {size / 1e6:.1f} MB with its outputs: make its figures smaller")


def main(names: list[str]) -> None:
    for key in ("DESCENTLAB_FAST", "MPLBACKEND"):  # the kernel inherits this environment
        os.environ.pop(key, None)
    # a name in notebooks/ or a path (notebooks/02_optimizers.ipynb from the repository root)
    paths = [HERE / Path(name).name for name in names] or sorted(HERE.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"no such notebook: {', '.join(missing)}")
    for path in paths:
        execute(path)


if __name__ == "__main__":
    main(sys.argv[1:])
