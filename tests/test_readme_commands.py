"""Every `python train.py ...` command the README shows in a code block runs as shown, in a
short form (a few batches of one epoch, no logger), so a config change cannot silently break
what a new user types first. Commands with a placeholder (`<time>`, `MY_IMAGES`, `DIR`, a file
of the user's) are left out; the data docs' tests cover those forms."""

from __future__ import annotations

import re
import shlex

import pytest

from helpers.cli import ROOT, run_cli

PLACEHOLDERS = ("<", "MY_", "DIR", "feats.npz", "reg.npz", "...")
SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "logger=none",
]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            command = re.sub(r"^(\.venv/bin/)?python ", "python ", command)
            if command.startswith("python train.py") and not any(
                p in command for p in PLACEHOLDERS
            ):
                commands.append(command)
    return list(dict.fromkeys(commands))  # each once


COMMANDS = readme_commands()


def test_the_readme_shows_train_commands():
    assert len(COMMANDS) >= 12, COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[c[16:70] for c in COMMANDS])
def test_a_readme_command_runs_as_shown(tmp_path, command):
    args = shlex.split(command)[2:]  # after `python train.py`
    where = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    placed = (
        [] if any(a.startswith("hydra.run.dir=") for a in args) else [f"{where}={tmp_path / 'out'}"]
    )
    # from tmp_path: a relative hydra.run.dir (my_run) lands there, not in the checkout
    run_cli(
        [*args, *SHORT, f"paths.log_dir={tmp_path / 'logs'}", *placed], cwd=tmp_path, timeout=900
    )
