"""The numbers of the model you keep: metrics.json, the value returned to sweepers, the W&B
summary and the report all describe the best epoch's weights, not the last epoch's."""

from __future__ import annotations

import csv
import json

import pytest

from descentlab.report import load_runs, markdown_table
from descentlab.run.train import main
from helpers.cli import read_metrics, run_cli
from helpers.wandb_records import records


def csv_epochs(run_dir) -> dict[int, dict[str, float]]:
    """Per epoch, every value logged in csv/metrics.csv (train and val rows merged)."""
    epochs: dict[int, dict[str, float]] = {}
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            values = {
                k: float(v)
                for k, v in row.items()
                if v not in ("", None) and k not in ("epoch", "step")
            }
            if any(k.startswith(("train/", "val/")) for k in values):
                epochs.setdefault(int(row["epoch"]), {}).update(values)
    return epochs


def wandb_summary(run_dir) -> dict:
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    summary: dict = {}
    for record in records(run_file):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return summary


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("early_stopped")
    run_cli(
        [
            "callbacks.early_stopping.patience=2",
            "trainer.max_epochs=80",
            "logger=many",
            "callbacks.progress_bar=null",
            f"hydra.run.dir={run_dir}",
        ]
    )
    return run_dir


@pytest.mark.slow
def test_metrics_json_reports_the_best_epoch_and_the_last_under_last(early_stopped):
    metrics, epochs = read_metrics(early_stopped), csv_epochs(early_stopped)
    best, last = metrics["best_epoch"], max(epochs)
    assert metrics["status"] == "early_stopped" and best == last - 2  # patience 2
    assert epochs[best]["val/loss"] == min(e["val/loss"] for e in epochs.values())
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert metrics[key] == pytest.approx(epochs[best][key], abs=1e-7), key
        assert metrics[f"last/{key}"] == pytest.approx(epochs[last][key], abs=1e-7), key
    assert metrics["val/loss"] != metrics["last/val/loss"]


@pytest.mark.slow
def test_the_wandb_summary_holds_the_kept_models_metrics(early_stopped):
    metrics, summary = read_metrics(early_stopped), wandb_summary(early_stopped)
    for key in ("val/loss", "val/acc", "train/loss", "test/acc", "last/val/loss", "best_epoch"):
        assert summary[key] == pytest.approx(metrics[key]), key
    assert summary["status"] == "early_stopped"


def test_the_optimized_metric_is_the_kept_models(make_cfg, tmp_path):
    cfg = make_cfg(
        "callbacks.early_stopping.patience=1",
        "trainer.max_epochs=40",
        "optimizer=sgd",
        "optimizer.lr=2.0",
        "logger=csv",
        "optimized_metric=val/loss",
    )
    value = main(cfg)
    metrics = read_metrics(tmp_path)
    assert value == metrics["val/loss"] and metrics["best_epoch"] < metrics["epochs"] - 1
    assert value < metrics["last/val/loss"]  # the last epoch was worse: not what is returned


def test_the_report_ranks_by_the_kept_model(tmp_path):
    # a run that peaked early and then overfit (kept 0.95) ranks above one that is best at its end
    runs = {
        "peaked": {"val/acc": 0.95, "last/val/acc": 0.80},
        "steady": {"val/acc": 0.90, "last/val/acc": 0.90},
    }
    for name, metrics in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(
            json.dumps({"status": "completed", **metrics})
        )
    table = markdown_table(load_runs([tmp_path]), "val/acc").splitlines()
    assert table[2].startswith("| peaked") and table[3].startswith("| steady")
