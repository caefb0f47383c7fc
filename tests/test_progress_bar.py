"""The default progress bar: live, showing the current epoch's values, cheap to draw."""

from __future__ import annotations

import re

from helpers.cli import read_metrics, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_bar_shows_the_current_epochs_train_loss_not_the_previous_ones(tmp_path):
    # TTY_COMPATIBLE=1: rich draws as in a terminal, although stdout is a pipe here
    proc = run_cli(
        ["trainer.max_epochs=3", "logger=none", "test=false", f"hydra.run.dir={tmp_path}"],
        env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"},
    )
    screen = ANSI.sub("", proc.stdout.replace("\r", "\n"))
    shown = re.findall(r"Epoch 2/2 .*train/loss: (\d+\.\d+)", screen)
    assert shown, screen[-2000:]
    # The bar's last drawing of the last epoch shows that epoch's train/loss: the one
    # metrics.json reports for it (Lightning's bar showed the epoch before's there).
    assert float(shown[-1]) == round(read_metrics(tmp_path)["last/train/loss"], 3)


def test_the_bar_updates_on_a_time_budget_not_after_every_batch(make_cfg, tmp_path):
    import lightning as L
    from hydra.utils import instantiate

    from descentlab.callbacks import ProgressBar

    class CountingBar(ProgressBar):
        """Counts the batch ends that do update the bar (Lightning's update after every one)."""

        updates = 0

        def _update(self, *args, **kwargs):
            if self.trainer.training:
                CountingBar.updates += 1
            return super()._update(*args, **kwargs)

    cfg = make_cfg("trainer.max_epochs=3")
    # one redraw per 10 s at most: the 19 batches of a digits epoch take far less than that
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[CountingBar(refresh_per_second=0.1)],
        default_root_dir=tmp_path,
    )
    trainer.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data))
    batches = 3 * trainer.num_training_batches
    # per epoch: the epoch start's reset, the first batch (the budget starts spent) and the
    # last batch; Lightning's bar updates at all 19 batch ends
    assert CountingBar.updates <= 3 * 3 < batches
