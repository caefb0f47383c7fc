"""Every notebook is committed executed with its figures, and runs top to bottom (fast mode:
a few epochs), so a broken one fails CI."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.cli import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_lecture_sections_have_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {
        "01_backprop",
        "02_optimizers",
        "03_initialization",
        "04_generalization",
    }


# a cell that draws: it calls plt.<something>(...), .plot(...) or .imshow(...)
PLOTS = re.compile(r"\bplt\.\w+\(|\.plot\(|\bimshow\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_with_its_figures(path: Path):
    """`make notebooks` saves them executed: on GitHub every figure and table is visible."""
    assert path.stat().st_size < 2_000_000, "outputs too large: make the figures smaller"
    book = nbformat.read(path, as_version=4)
    code = [(i, cell) for i, cell in enumerate(book.cells) if cell.cell_type == "code"]
    assert code
    for index, cell in code:
        where = f"{path.name}, cell {index}"
        assert cell.execution_count is not None, f"{where} was not executed (run `make notebooks`)"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{where} failed"
        if PLOTS.search(cell.source):
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{where} plots but has no image output"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, monkeypatch, tmp_path):
    monkeypatch.setenv("DESCENTLAB_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    # run in a copy of notebooks/ so the logs it writes land in tmp_path
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    for module in (ROOT / "notebooks").glob("*.py"):  # demos.py, exercises.py: beside it
        shutil.copy(module, workdir)
    # execute() raises CellExecutionError at the first cell that fails
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    assert os.path.isdir(tmp_path / "logs")


def _imported_top_level_modules(path: Path) -> set[str]:
    import ast

    book = nbformat.read(path, as_version=4)
    modules = set()
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


def test_what_the_notebooks_import_is_declared_in_pyproject():
    """`make lab` installs the package with its `notebooks` extra: that must cover every
    third-party import of the notebooks (a dependency of a dependency does not count)."""
    import sys
    from importlib.metadata import packages_distributions

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[ ;]", requirement)[0].lower().replace("_", "-")
        for requirement in project["dependencies"] + project["optional-dependencies"]["notebooks"]
    }
    assert "jupyterlab" in declared
    distributions = packages_distributions()
    for path in NOTEBOOKS:
        for module in _imported_top_level_modules(path):
            if module in sys.stdlib_module_names or module == "descentlab":
                continue
            if (ROOT / "notebooks" / f"{module}.py").is_file():
                continue  # a module of notebooks/ itself (demos, exercises)
            names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            assert names & declared, (
                f"{path.name} imports {module}, which pyproject.toml does not declare"
            )
