"""End to end: every runnable option trains, metrics.json is complete, the CLI works."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from torchvision import datasets

from descentlab.run.train import run
from helpers import requires_gpu
from helpers.cli import read_metrics, run_cli
from helpers.fake_files import register_cifar10_checksums, write_cifar10, write_mnist_like
from helpers.wandb_records import history

REQUIRED_METRICS = {
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "test/loss",
    "test/acc",
    "best_epoch",
    "ckpt_path",
}


def check_metrics_file(run_dir: Path) -> dict:
    metrics = read_metrics(run_dir)
    assert REQUIRED_METRICS <= set(metrics), sorted(metrics)
    for key in ("train/loss", "val/loss", "test/loss"):
        assert math.isfinite(metrics[key])
    for key in ("train/acc", "val/acc", "test/acc"):
        assert 0.0 <= metrics[key] <= 1.0
    return metrics


def test_short_default_run_writes_metrics_and_checkpoints(make_cfg, tmp_path):
    metrics = run(make_cfg("trainer.max_epochs=3"))
    on_disk = check_metrics_file(tmp_path)
    assert on_disk["test/acc"] == pytest.approx(metrics["test/acc"])
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and (
        tmp_path / "checkpoints" / "last.ckpt"
    ).is_file()
    assert on_disk["ckpt_path"] == str(tmp_path / "checkpoints" / "best.ckpt")
    assert 0 <= on_disk["best_epoch"] <= 2
    assert (tmp_path / "csv" / "metrics.csv").is_file()


@pytest.mark.parametrize("optimizer", ["torch_sgd", "torch_adam", "torch_adamw"])
def test_fast_dev_run_each_optimizer(make_cfg, optimizer):
    metrics = run(make_cfg(f"optimizer={optimizer}", "debug=fdr"))
    assert math.isfinite(metrics["train/loss"])


@pytest.mark.parametrize("trainer", ["default", "cpu"])
def test_fast_dev_run_each_single_process_trainer(make_cfg, trainer):
    assert math.isfinite(run(make_cfg(f"trainer={trainer}", "debug=fdr"))["test/loss"])


@requires_gpu
@pytest.mark.gpu
def test_fast_dev_run_gpu_trainer(make_cfg):
    assert math.isfinite(run(make_cfg("trainer=gpu", "debug=fdr"))["test/loss"])


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "none"])
def test_fast_dev_run_each_logger(make_cfg, tmp_path, logger):
    run(make_cfg(f"logger={logger}", "trainer.max_epochs=1"))
    if logger == "csv":
        assert "val/acc" in (tmp_path / "csv" / "metrics.csv").read_text()
    if logger == "tensorboard":
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("logger", ["wandb", "many"])
def test_wandb_logs_offline_and_the_metrics_read_back(make_cfg, tmp_path, logger):
    metrics = run(make_cfg(f"logger={logger}", "trainer.max_epochs=2"))
    run_files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    rows = history(run_files[0])
    val_acc = [row["val/acc"] for row in rows if "val/acc" in row]
    test_acc = [row["test/acc"] for row in rows if "test/acc" in row]
    assert len(val_acc) == 2
    assert len([row["val/loss"] for row in rows if "val/loss" in row]) == 2  # the sweeps' metrics
    assert test_acc == [pytest.approx(metrics["test/acc"])]


def _mnist_files(data_dir: Path, name: str) -> None:
    write_mnist_like(data_dir, name, n_train=400, n_test=100)


@pytest.mark.parametrize("data", ["digits", "mnist", "fashion_mnist", "cifar10"])
def test_fast_dev_run_each_dataset(make_cfg, tmp_path, monkeypatch, data):
    data_dir = tmp_path / "data"
    if data in ("mnist", "fashion_mnist"):
        _mnist_files(data_dir, {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[data])
    if data == "cifar10":
        for attr in ("train_list", "test_list", "meta"):
            monkeypatch.setattr(datasets.CIFAR10, attr, getattr(datasets.CIFAR10, attr))
        register_cifar10_checksums(write_cifar10(data_dir, n_train=500, n_test=100))
    extra = [] if data == "digits" else ["data.val_size=100"]
    cfg = make_cfg(f"data={data}", "debug=fdr", *extra)
    assert math.isfinite(run(cfg)["test/loss"])


def test_full_batch_gradient_descent_takes_one_step_per_epoch(make_cfg):
    metrics = run(make_cfg("data.batch_size=full", "trainer.max_epochs=4", "optimizer=torch_sgd"))
    assert metrics["global_step"] == 4


def test_overfitting_one_batch_drives_the_loss_to_zero(make_cfg):
    metrics = run(make_cfg("debug=overfit", "trainer.max_epochs=150", "data.batch_size=32"))
    assert metrics["train/loss"] < 0.01 and metrics["train/acc"] == 1.0
    # debug=overfit sets test: false (train.yaml's own test: true once won over it)
    assert not any(key.startswith("test/") for key in metrics), metrics


@pytest.mark.smoke
def test_missing_dataset_is_one_line_and_exit_1(tmp_path):
    proc = run_cli(
        ["data=mnist", f"paths.data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("descentlab: error:")]
    assert len(lines) == 1 and "data.download=true" in lines[0] and "data=digits" in lines[0]


@pytest.mark.slow
def test_default_cli_run_reaches_97_percent(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli([f"hydra.run.dir={run_dir}"])
    metrics = check_metrics_file(run_dir)
    assert metrics["test/acc"] >= 0.97, metrics
    assert "final metrics" in proc.stdout
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (
        run_dir / "checkpoints" / "last.ckpt"
    ).is_file()
    assert metrics["best_epoch"] < metrics["epochs"]


@pytest.mark.slow
def test_multirun_gives_one_run_dir_each_with_its_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        ["-m", "optimizer=torch_sgd,torch_adam", "trainer.max_epochs=2", f"hydra.sweep.dir={sweep}"]
    )
    for num, optimizer in enumerate(["torch_sgd", "torch_adam"]):
        check_metrics_file(sweep / str(num))
        assert (
            f"optimizer={optimizer}" in (sweep / str(num) / ".hydra" / "overrides.yaml").read_text()
        )
    assert (sweep / "multirun.yaml").is_file()


@pytest.mark.slow
def test_experiment_runs_from_the_cli(tmp_path):
    run_cli(["+experiment=lecture_mlp", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}"])
    config = (tmp_path / ".hydra" / "config.yaml").read_text()
    assert "activation: sigmoid" in config
    check_metrics_file(tmp_path)


@pytest.mark.slow
def test_ddp_cpu_runs_two_gloo_processes(tmp_path):
    proc = run_cli(
        [
            "trainer=ddp_cpu",
            "trainer.max_epochs=2",
            f"hydra.run.dir={tmp_path}",
            "callbacks.progress_bar=null",
        ]
    )
    output = proc.stdout + proc.stderr
    assert "distributed_backend=gloo" in output and "All distributed processes registered" in output
    assert "GLOBAL_RANK: 1" in output or "world_size=2" in output or "MEMBER: 2/2" in output
    metrics = check_metrics_file(tmp_path)
    assert metrics["test/acc"] > 0.5


@pytest.mark.smoke
def test_an_epoch_without_validation_records_no_validation_values(tmp_path):
    # validation every other epoch; the third epoch cut short by max_steps (19 steps an epoch):
    # only epoch 1 was validated, and only it may carry val/* and gap/* (Lightning keeps the
    # latest values around, which epochs 2 and 0 would otherwise have been given)
    run_dir = tmp_path / "run"
    run_cli(
        [
            "trainer.check_val_every_n_epoch=2",
            "trainer.max_epochs=3",
            "trainer.max_steps=50",
            "logger=none",
            "callbacks.progress_bar=null",
            f"hydra.run.dir={run_dir}",
        ]
    )
    epochs = json.loads((run_dir / "history.json").read_text())["epochs"]
    assert list(epochs) == ["0", "1", "2"]
    validated = {e for e, values in epochs.items() if any(k.startswith("val/") for k in values)}
    assert validated == {"1"}, epochs
    assert {"val/loss", "val/acc", "gap/loss"} <= set(epochs["1"])
    assert not any(k.startswith("gap/") for k in {**epochs["0"], **epochs["2"]})
    metrics = read_metrics(run_dir)
    assert metrics["best_epoch"] == 1 and metrics["val/loss"] == epochs["1"]["val/loss"]
    assert "last/train/loss" in metrics and not any(k.startswith("last/val/") for k in metrics)


def test_validating_every_other_epoch_keeps_the_best_weights_and_a_current_last_ckpt(tmp_path):
    # epochs 0-4, validated at 1 and 3: the last epoch trained after the best validation,
    # so its weights must be replaced by the best ones (they were kept: model.pt and the
    # test were epoch 4's while metrics.json said best_epoch 3), and last.ckpt must hold
    # epoch 4 (it held epoch 3, and a resume of the finished run trained epoch 4 again)
    import torch

    run_dir = tmp_path / "run"
    args = [
        "trainer.check_val_every_n_epoch=2",
        "trainer.max_epochs=5",
        "logger=none",
        "callbacks.progress_bar=null",
        f"hydra.run.dir={run_dir}",
    ]
    run_cli(args)
    metrics = read_metrics(run_dir)
    assert metrics["best_epoch"] in (1, 3) and metrics["epochs"] == 5
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=False)
    kept = torch.load(run_dir / "model.pt", weights_only=True)
    assert best["epoch"] == metrics["best_epoch"]
    assert kept and all(torch.equal(kept[k], best["state_dict"][f"net.{k}"]) for k in kept)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 4
    proc = run_cli([*args, "ckpt_path=last"])
    assert "nothing to resume" in proc.stderr and read_metrics(run_dir) == metrics
