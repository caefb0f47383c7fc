"""Every notebook runs top to bottom (fast mode: a few epochs), so a broken one fails CI."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_lecture_sections_have_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {
        "01_backprop",
        "02_optimizers",
        "03_initialization",
        "04_generalization",
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, monkeypatch, tmp_path):
    monkeypatch.setenv("DESCENTLAB_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    # run in a copy of notebooks/ so the logs it writes land in tmp_path
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    # execute() raises CellExecutionError at the first cell that fails
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    assert os.path.isdir(tmp_path / "logs")
