"""Lightning's Trainer switches that users type from habit, without a `+`, through the CLI
(found by a hostile pass: they needed a `+`, and max_steps, enable_checkpointing and
64-true precision then failed with a traceback or a refusal that blamed the user)."""

from __future__ import annotations

import math

import pytest

from helpers.cli import one_error_line, read_metrics, run_cli

QUIET = ["callbacks.progress_bar=null", "logger=none"]


def no_checkpoints(run_dir):
    return not any((run_dir / "checkpoints").glob("*.ckpt"))


# switches, what metrics.json must say, and a check on the run dir
SWITCHES = {
    "max_steps": (
        ["trainer.max_steps=7"],
        lambda m, d: m["status"] == "max_steps" and m["global_step"] == 7,
    ),
    "max_time": (
        ["trainer.max_time=00:00:00:02", "trainer.max_epochs=1000", "~callbacks.early_stopping"],
        lambda m, d: m["status"] == "max_time" and m["epochs"] < 1000,
    ),
    "enable_checkpointing=false": (
        ["trainer.enable_checkpointing=false", "trainer.max_epochs=2"],
        lambda m, d: (
            no_checkpoints(d) and (d / "model.pt").is_file() and m["status"] == "completed"
        ),
    ),
    "enable_checkpointing=false, callbacks=none": (
        [
            "trainer.enable_checkpointing=false",
            "callbacks=none",
            "trainer.max_epochs=2",
            "logger=none",
        ],
        lambda m, d: no_checkpoints(d) and m["status"] == "completed",
    ),
    "64-true": (
        ["trainer.precision=64-true", "trainer.max_epochs=2"],
        lambda m, d: m["status"] == "completed" and m["test/acc"] > 0.5,
    ),
    "accumulate_grad_batches": (
        ["trainer.accumulate_grad_batches=2", "trainer.max_epochs=2"],
        lambda m, d: m["global_step"] == 2 * 10,  # 19 batches an epoch: 10 steps of 2
    ),
    "gradient_clip_val": (
        [
            "trainer.gradient_clip_val=0.5",
            "trainer.gradient_clip_algorithm=norm",
            "trainer.max_epochs=2",
        ],
        lambda m, d: m["status"] == "completed" and math.isfinite(m["test/loss"]),
    ),
    "limit_train_batches and val_check_interval": (
        ["trainer.limit_train_batches=6", "trainer.val_check_interval=3", "trainer.max_epochs=2"],
        lambda m, d: m["global_step"] == 12 and m["status"] == "completed",
    ),
}


@pytest.mark.parametrize("name", list(SWITCHES))
def test_a_trainer_switch_works_without_a_plus(tmp_path, name):
    overrides, check = SWITCHES[name]
    quiet = [q for q in QUIET if not (name.endswith("callbacks=none") and "progress_bar" in q)]
    run_cli([*overrides, *quiet, f"hydra.run.dir={tmp_path}"])
    metrics = read_metrics(tmp_path)
    assert check(metrics, tmp_path), metrics


def test_a_plus_from_habit_says_to_drop_it(tmp_path):
    proc = run_cli(["+trainer.max_steps=7", f"hydra.run.dir={tmp_path / 'run'}"], check=False)
    assert one_error_line(proc) == (
        "descentlab: error: trainer.max_steps is in the config already: set it without the +, "
        "trainer.max_steps=VALUE"
    )


def test_a_max_steps_stop_resumes_to_the_uninterrupted_run(tmp_path):
    """Found by a hostile pass: a run cut mid-epoch by max_steps saved an end-of-epoch state,
    so a resume skipped the rest of that epoch and recorded no validation."""
    common = ["trainer.max_epochs=2", *QUIET]
    run_cli([*common, f"hydra.run.dir={tmp_path / 'whole'}"])
    run_cli([*common, "trainer.max_steps=3", f"hydra.run.dir={tmp_path / 'cut'}"])
    assert read_metrics(tmp_path / "cut")["status"] == "max_steps"
    run_cli([*common, "ckpt_path=last", f"hydra.run.dir={tmp_path / 'cut'}"])
    whole, resumed = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "cut")
    assert resumed["global_step"] == whole["global_step"] == 38
    assert resumed["val/loss"] == pytest.approx(whole["val/loss"], rel=1e-5)
