"""The default progress bar: live, showing the current epoch's values, cheap to draw."""

from __future__ import annotations

import re

from conftest import read_metrics, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_bar_shows_the_current_epochs_train_loss_not_the_previous_ones(tmp_path):
    # TTY_COMPATIBLE=1: rich draws as in a terminal, although stdout is a pipe here
    proc = run_cli(["trainer.max_epochs=3", "logger=none", "test=false", f"hydra.run.dir={tmp_path}"],
                   env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"})  # fmt: skip
    screen = ANSI.sub("", proc.stdout.replace("\r", "\n"))
    shown = re.findall(r"Epoch 2/2 .*train/loss: (\d+\.\d+)", screen)
    assert shown, screen[-2000:]
    # The bar's last drawing of the last epoch shows that epoch's train/loss: the one
    # metrics.json reports for it (Lightning's bar showed the epoch before's there).
    assert float(shown[-1]) == round(read_metrics(tmp_path)["last/train/loss"], 3)
