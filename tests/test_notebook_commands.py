"""Every `python train.py ...` command a notebook shows next to a figure runs as shown (in
a short form: one epoch), so a config change cannot silently break what students type."""

from __future__ import annotations

import re
import shlex

import nbformat
import pytest

from helpers.cli import ROOT, run_cli

COMMAND = re.compile(r"`(python train\.py [^`]+)`")


def shown_commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for command in COMMAND.findall(cell.source):
                if any(placeholder in command for placeholder in ("OVERRIDES", "<", "...")):
                    continue
                found.append((path.stem, command))
    return found


COMMANDS = shown_commands()


def test_the_generalization_notebook_shows_its_commands():
    assert sum(1 for notebook, _ in COMMANDS if notebook == "04_generalization") >= 4


@pytest.mark.slow
@pytest.mark.parametrize(
    "notebook, command", COMMANDS, ids=[f"{n}: {c[16:60]}" for n, c in COMMANDS]
)
def test_a_command_a_notebook_shows_runs(tmp_path, notebook, command):
    args = shlex.split(command)[2:]  # after "python train.py"
    short = [
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    proc = run_cli([*args, *short, "logger=none"], check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.rglob("metrics.json")), "the command wrote no metrics.json"
