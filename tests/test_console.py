"""What a run prints: each line once, no advertisement, no warning a user cannot act on."""

from __future__ import annotations

import os

import pytest

from helpers.cli import run_cli


def test_a_default_run_prints_each_lightning_line_once_and_no_advertisement(tmp_path):
    # on a SLURM login node `srun` is on the PATH (Lightning looks for it with shutil.which);
    # a one-process run needs no srun, so Lightning's hint to prepend it is not printed
    login_node = tmp_path / "bin"
    login_node.mkdir()
    (login_node / "srun").write_text("#!/bin/sh\nexit 0\n")
    (login_node / "srun").chmod(0o755)
    path = f"{login_node}{os.pathsep}{os.environ['PATH']}"
    proc = run_cli(
        ["trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"], env={"PATH": path}
    )
    console = proc.stdout + proc.stderr
    assert "srun" not in console, console[-3000:]
    tmp_path = tmp_path / "run"
    assert console.count("`Trainer.fit` stopped") == 1, console[-3000:]
    assert console.count("GPU available") == 1, console[-3000:]
    assert "litlogger" not in console and "Tip:" not in console
    # the summary counts the forward pass of one sample (Lightning printed 0 without one)
    assert "Total FLOPs: 0" not in console and "Total FLOPs:" in console
    # Lightning's lines still reach the run's log file
    assert "`Trainer.fit` stopped" in (tmp_path / "train.log").read_text()


@pytest.mark.slow
def test_ddp_prints_no_sync_dist_warnings(tmp_path):
    proc = run_cli(
        [
            "trainer=ddp_cpu",
            "debug=limit",
            "trainer.max_epochs=1",
            "logger=none",
            f"hydra.run.dir={tmp_path}",
        ],
        env={"PYTHONWARNINGS": "default"},
    )
    console = proc.stdout + proc.stderr
    assert "Trainer.fit" in console  # the run did print (warnings were not all hidden)
    assert "sync_dist=True" not in console, console[-3000:]
