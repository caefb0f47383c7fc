"""Every task through the real CLI: regression reaching the least-squares solution, the
worked example's first step, train → resume → multirun for each task, DDP, and the
one-line refusals of a task/data mismatch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from descentlab import api
from descentlab.autograd.worked_example import grads_by_hand
from helpers.cli import dead_pid, one_error_line, read_metrics, run_cli
from helpers.compose import compose_config

QUIET = ["callbacks.progress_bar=null", "logger=none"]


def regression_file(path, n=300, d=4, k=1, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, k))
    y = (x @ w + 0.5 + 0.1 * rng.standard_normal((n, k))).astype(dtype)
    np.savez(path, x=x, y=y[:, 0] if k == 1 else y)
    return path


def train_split(overrides, tmp_path):
    """The training split a run with these overrides reads (same config, same seed)."""
    cfg = compose_config(overrides, tmp_path / "compose")
    data = instantiate(cfg.data)
    data.setup("fit")
    return data.splits["train"]


def test_a_linear_regression_reaches_the_least_squares_solution(tmp_path):
    """Full-batch GD on ½‖Wx + b − y‖² (``model.net.hidden_dims=[]``) converges to the
    closed-form least-squares fit of the training split (``torch.linalg.lstsq``)."""
    data = [
        "task=regression",
        "data=arrays",
        f"data.path={regression_file(tmp_path / 'lin.npz')}",
        "data.batch_size=full",
    ]
    run_cli(
        [
            *data,
            *QUIET,
            "model.net.hidden_dims=[]",
            "optimizer=sgd",
            "optimizer.lr=0.5",
            "trainer.max_epochs=150",
            "~callbacks.early_stopping",
            "task.monitor=train/loss",  # keep the last (lowest training loss) epoch, not val's best
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    x, y = train_split(data, tmp_path)
    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y.double()[:, None]).solution[:, 0]
    linear = api.load(tmp_path / "run").net[1]
    learned = torch.cat([linear.weight.detach()[0], linear.bias.detach()]).double()
    assert torch.allclose(learned, solution, atol=1e-4), (learned, solution)
    metrics = read_metrics(tmp_path / "run")
    assert metrics["task"] == "regression" and metrics["objective"] == "val/loss"
    # the lecture's loss is half the mean squared error for one target value
    assert metrics["train/loss"] == pytest.approx(metrics["train/mse"] / 2, rel=1e-4)


def test_the_worked_examples_first_step_follows_the_hand_derived_gradients(tmp_path):
    """``+experiment=worked_example``: one full-batch step of w ← w − η ∂ℒ/∂w from w = b = 0.3,
    with ℒ = mean_i ½(y_i − σ(w x_i + b))² + λw² and the gradients of worked_example.py."""
    setup = ["+experiment=worked_example", "init=constant", "init.value=0.3"]
    run_cli([*setup, *QUIET, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"])
    x, y = train_split(setup, tmp_path)
    lam, lr = 0.01, 1.0  # the experiment's model.l2_penalty and optimizer.lr
    grads = np.mean(
        [
            grads_by_hand(0.3, 0.3, float(xi), int(yi), lam)
            for xi, yi in zip(x[:, 0], y, strict=True)
        ],
        axis=0,
    )
    unit = api.load(tmp_path / "run").net[1]
    assert float(unit.weight) == pytest.approx(0.3 - lr * grads[0], rel=1e-5)
    assert float(unit.bias) == pytest.approx(0.3 - lr * grads[1], rel=1e-5)


def test_the_worked_example_trains_to_a_good_classifier(tmp_path):
    run_cli(["+experiment=worked_example", *QUIET, f"hydra.run.dir={tmp_path}"])
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "completed" and metrics["task"] == "binary"
    assert metrics["test/acc"] > 0.85 and metrics["test/auroc"] > 0.9


TASK_RUNS = {
    "regression": ["task=regression", "data=teacher", "data.samples=300"],
    "binary_bce": ["task=binary", "data=teacher", "data.kind=binary", "data.samples=300"],
    "binary_squared": ["task=binary", "task.loss=squared", "data=digits", "data.classes=[3,8]"],
}
EXPECTED = {
    "regression": {"train/mse", "val/mae", "test/r2"},
    "binary_bce": {"train/auroc", "val/acc", "test/auroc"},
    "binary_squared": {"val/auroc", "test/acc"},
}


@pytest.mark.parametrize("name", list(TASK_RUNS))
def test_each_task_trains_resumes_and_sweeps(tmp_path, name):
    run = [*TASK_RUNS[name], *QUIET, f"hydra.run.dir={tmp_path / 'run'}"]
    run_cli([*run, "trainer.max_epochs=2"])
    first = read_metrics(tmp_path / "run")
    assert EXPECTED[name] <= set(first) and first["epochs"] == 2
    if name == "binary_squared":
        return  # task.loss changes the loss only: binary_bce resumes and sweeps the same task
    # a save killed mid-write (kill -9) left its temporary file: the resume removes it
    stale = tmp_path / "run" / "checkpoints" / f".last.ckpt.tmp-{dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    run_cli([*run, "trainer.max_epochs=3", "ckpt_path=last"])
    assert not stale.exists()
    resumed = read_metrics(tmp_path / "run")
    assert resumed["epochs"] == 3 and resumed["status"] == "completed"
    history = json.loads((tmp_path / "run" / "history.json").read_text())["epochs"]
    assert sorted(int(e) for e in history) == [0, 1, 2]
    # a multirun: one objective value per job for the sweeper, metrics.json per job
    sweep = tmp_path / "sweep"
    run_cli(
        [
            "-m",
            *TASK_RUNS[name],
            *QUIET,
            "optimizer.lr=0.001,0.01",
            "trainer.max_epochs=1",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    jobs = [read_metrics(sweep / str(i)) for i in range(2)]
    assert all(
        job["objective"] == first["objective"] and math.isfinite(job[first["objective"]])
        for job in jobs
    )


@pytest.mark.slow
@pytest.mark.parametrize("name, metric", [("regression", "test/r2"), ("binary_bce", "test/auroc")])
def test_each_task_trains_under_ddp(tmp_path, name, metric):
    """ddp_cpu (2 processes, gloo): the same epochs, finite metrics synced over ranks (R² and
    AUROC are computed over the whole split, not averaged per rank), one metrics.json."""
    args = [*TASK_RUNS[name], *QUIET, "trainer.max_epochs=2", "data.batch_size=16"]
    run_cli([*args, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'ddp'}"])
    metrics = read_metrics(tmp_path / "ddp")
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert math.isfinite(metrics["test/loss"]) and metrics[metric] > 0.5


def float_file(path, labels=False, nan=False, width=1):
    x = np.random.default_rng(0).standard_normal((60, 3)).astype(np.float32)
    y = np.arange(60) % 2 if labels else np.linspace(-1, 1, 60 * width).reshape(60, width).squeeze()
    if nan:
        y = y.astype(np.float32)
        y[7] = np.nan
    np.savez(path, x=x, y=y)
    return str(path)


MISMATCHES = {
    "regression on class labels": (
        ["task=regression"],
        "task=regression needs real-valued targets; DigitsDataModule has class labels",
    ),
    "classification of real values": (
        ["data=diabetes"],
        "task=classification needs class labels; DiabetesDataModule has real-valued targets",
    ),
    "binary of ten classes": (
        ["task=binary"],
        "task=binary needs two classes; DigitsDataModule has 10",
    ),
    "binary of real values": (
        ["task=binary", "data=teacher"],
        "task=binary needs class labels; TeacherDataModule has real-valued targets",
    ),
    "a monitor the task never logs": (
        ["task=regression", "data=teacher", "callbacks.early_stopping.monitor=val/acc"],
        "callbacks.early_stopping.monitor='val/acc' is invalid: a metric the regression task logs",
    ),
    "an objective the task never logs": (
        ["task=regression", "data=teacher", "optimized_metric=val/acc"],
        "optimized_metric='val/acc' is invalid",
    ),
    "a loss binary does not know": (
        ["task=binary", "task.loss=hinge"],
        "task.loss='hinge' is invalid",
    ),
    # found by a hostile pass: a higher-is-better monitor kept with mode min kept the worst
    # epoch, silently; a test/* monitor crashed after the first epoch
    "a monitor against its direction": (
        ["task.monitor=val/acc"],
        "task.mode='min' is invalid: max (higher val/acc is better)",
    ),
    "an early-stopping monitor against its direction": (
        ["task=regression", "data=teacher", "callbacks.early_stopping.monitor=val/r2"],
        "callbacks.early_stopping.mode='min' is invalid: max (higher val/r2 is better)",
    ),
    "a test metric as monitor": (
        ["task.monitor=test/acc", "task.mode=max"],
        "task.monitor='test/acc' is invalid: a metric the classification task logs while training",
    ),
    "a regression split of one sample": (
        ["task=regression", "data=teacher", "data.samples=5"],
        "the val split: 1 sample(s); each split needs at least 2",
    ),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_a_task_data_mismatch_is_one_line(tmp_path, case):
    overrides, expected = MISMATCHES[case]
    proc = run_cli([*overrides, *QUIET, f"hydra.run.dir={tmp_path / 'run'}"], check=False)
    assert expected in one_error_line(proc)
    assert not (tmp_path / "run" / "checkpoints").exists()


ARRAY_MISMATCHES = {
    "float targets, classification": ({}, [], "task=classification needs class labels"),
    "labels, regression": (
        {"labels": True},
        ["task=regression"],
        "task=regression needs real-valued targets",
    ),
    "NaN targets": ({"nan": True}, ["task=regression"], "the targets hold NaN or inf in 1 rows"),
    "label noise on real values": (
        {},
        ["task=regression", "data.label_noise=0.5"],
        "data.label_noise=0.5 acts on class labels",
    ),
    "a class subset of real values": (
        {},
        ["task=regression", "data.classes=[0,1]"],
        "data.classes=[0, 1] is invalid: null: it selects class labels",
    ),
}


@pytest.mark.parametrize("case", list(ARRAY_MISMATCHES))
def test_arrays_targets_that_do_not_fit_the_task_are_one_line(tmp_path, case):
    kind, overrides, expected = ARRAY_MISMATCHES[case]
    path = float_file(tmp_path / "d.npz", **kind)
    proc = run_cli(
        [
            "data=arrays",
            f"data.path={path}",
            *overrides,
            *QUIET,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    assert expected in one_error_line(proc)


def test_arrays_regression_reads_targets_with_several_values(tmp_path):
    path = regression_file(tmp_path / "k3.npz", k=3)
    run_cli(
        [
            "task=regression",
            "data=arrays",
            f"data.path={path}",
            *QUIET,
            "trainer.max_epochs=2",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "completed" and math.isfinite(metrics["test/r2"])
    assert api.load(tmp_path / "run").net[-1].out_features == 3


@pytest.mark.slow
def test_a_binary_ddp_run_loads_again(tmp_path):
    """Found by a hostile pass: AUROC's scores, synced across ranks into one tensor, were
    saved in the checkpoint and could not be put back into the fresh metric's list."""
    args = [*TASK_RUNS["binary_squared"], *QUIET, "trainer.max_epochs=1", "trainer=ddp_cpu"]
    run_cli([*args, f"hydra.run.dir={tmp_path}"])
    module = api.load(tmp_path / "checkpoints" / "last.ckpt")
    assert module.task.name == "binary"
    run_cli([*args, "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={tmp_path}"])
    assert read_metrics(tmp_path)["epochs"] == 2


def test_a_binary_split_with_one_class_is_refused(tmp_path):
    """AUROC is undefined on one class (torchmetrics reported 0.0): every split needs both."""
    y = np.zeros(40, dtype=bool)
    y[[0, 1, 2, 3, 4, 5, 30, 31]] = True  # seeded split: some split gets a single class
    x = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    np.savez(tmp_path / "rare.npz", x=x, y=y)
    ok = [seed for seed in range(40) if _split_has_one_class(tmp_path / "rare.npz", seed)]
    assert ok, "no seed gives a one-class split"
    proc = run_cli(
        [
            "task=binary",
            "data=arrays",
            f"data.path={tmp_path / 'rare.npz'}",
            f"seed={ok[0]}",
            *QUIET,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    assert "a classifier needs at least two classes" in one_error_line(proc)


def _split_has_one_class(path, seed) -> bool:
    from descentlab.data import ArraysDataModule

    data = ArraysDataModule(str(path), seed=seed, num_classes=2)
    data.setup("fit")
    return any(len(set(y.tolist())) < 2 for _x, y in data.splits.values())
