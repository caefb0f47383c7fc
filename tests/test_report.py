"""The report: plots and a ranked table from a real multirun."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descentlab.report import (
    ReportError,
    draw_curves,
    draw_diagnostics,
    load_runs,
    make_report,
    markdown_table,
)
from helpers.cli import run_cli
from helpers.fake_runs import sweep as fake_sweep

STAGES = ("train", "val", "test")

# short runs of each task on the teacher's data (2 epochs, 300 samples: a few seconds each)
QUICK = ["trainer.max_epochs=2", "data.samples=300", "logger=none", "callbacks.progress_bar=null"]


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("sweep")
    run_cli(
        [
            "-m",
            "optimizer=sgd,adam",
            "trainer.max_epochs=3",
            "callbacks.progress_bar=null",
            "logger=tensorboard",  # not the CSV logger: the curves come from history.json
            f"hydra.sweep.dir={sweep}",
        ]
    )
    return sweep


@pytest.mark.slow
def test_report_plots_and_ranks_a_multirun(multirun, tmp_path):
    proc = run_cli([str(multirun), "--out", str(tmp_path)], module="descentlab.report")
    assert "wrote" in proc.stdout and str(tmp_path / "curves.png") in proc.stdout
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    caption, header, rows = read_table(tmp_path / "table.md")
    assert caption == "ranked by val/acc (higher is better)" and len(rows) == 2
    assert header == [
        *(f"{stage}/{name}" for name in ("loss", "acc") for stage in ("train", "val", "test")),
        *("best_epoch", "epochs", "status"),
    ]
    labels = [row["run"] for row in rows]
    assert set(labels) == {"optimizer=sgd", "optimizer=adam"}  # only the differing override
    accs = {row["run"]: float(row["val/acc"]) for row in rows}
    assert accs[labels[0]] >= accs[labels[1]]  # best val/acc first
    runs = load_runs([multirun])
    assert all(len(r.curves[name]) == 3 for r in runs for name in ("train/loss", "val/acc"))
    figure = draw_curves(runs)
    for ax in figure.axes:
        assert ax.get_ylabel() and all(t == int(t) for t in ax.get_xticks())
        # one line per run and one dot at each run's kept epoch
        dots = [line for line in ax.lines if line.get_marker() == "o"]
        assert len(ax.lines) == 4 and len(dots) == 2
    for run in runs:
        dot = next(
            line
            for line in figure.axes[1].lines
            if line.get_marker() == "o"
            and line.get_color() == _line_of(figure.axes[1], run.label).get_color()
        )
        assert list(dot.get_xdata()) == [run.final["best_epoch"]]


def _line_of(ax, label):
    return next(line for line in ax.lines if line.get_label() == label)


def read_table(path):
    """table.md: its caption line, the column names and one {column: cell} per row."""
    lines = path.read_text().splitlines()
    assert lines[1] == "" and lines[2].startswith("| run |"), lines[:4]

    def cells(line):
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    header = cells(lines[2])
    rows = [
        dict(zip(header, cells(line), strict=True)) for line in lines[4:] if line.startswith("|")
    ]
    return lines[0], header[1:], rows


def test_a_run_without_per_epoch_metrics_is_one_line(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "metrics.json").write_text(json.dumps({"val/acc": 0.9, "epochs": 3}))
    proc = run_cli([str(tmp_path)], module="descentlab.report", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no per-epoch metrics" in proc.stderr and "logger=csv" in proc.stderr


def test_runs_from_before_history_json_are_read_from_their_csv_log(tmp_path):
    run = tmp_path / "0"
    (run / "csv").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"val/acc": 0.9, "epochs": 2}))
    (run / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss,val/loss\n0,9,,0.5\n0,9,0.7,\n1,19,,0.4\n1,19,0.6,\n"
    )
    (loaded,) = load_runs([tmp_path])
    assert loaded.curves == {"train/loss": [(0, 0.7), (1, 0.6)], "val/loss": [(0, 0.5), (1, 0.4)]}


def test_a_dir_without_runs_is_a_clear_error(tmp_path):
    proc = run_cli([str(tmp_path)], module="descentlab.report", check=False)
    assert (
        proc.returncode == 1
        and "no finished runs" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_runs_with_different_metrics_are_refused(tmp_path):
    for name, metrics in (
        ("0", {"val/acc": 0.9, "val/loss": 0.3}),
        ("1", {"val/acc": 0.8, "verify/max_abs_err": 0.0, "test/acc": 0.7}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ReportError, match="different metrics"):
        make_report([tmp_path])
    with pytest.raises(ReportError, match="missing"):
        make_report([tmp_path], metric="train/acc")


def test_table_ranks_losses_ascending(tmp_path):
    for name, loss in (("0", 0.5), ("1", 0.2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"val/loss": loss}))
    table = markdown_table(load_runs([tmp_path]), "val/loss").splitlines()
    assert "0.2000" in table[2] and "0.5000" in table[3]


@pytest.mark.slow
def test_tensorboards_hparams_tab_holds_the_config_and_the_final_metrics(multirun):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for run in load_runs([multirun]):
        events = EventAccumulator(str(run.path / "tensorboard")).Reload()
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        assert start.hparams["optimizer/_target_"].string_value.startswith("descentlab.optim")
        final = [e.value for e in events.Scalars("final/val/acc")]
        assert final == pytest.approx([run.final["val/acc"]])
        # the val/acc curve has one point per epoch: the final values did not add one
        assert len(events.Scalars("val/acc")) == run.final["epochs"]


# --------------------------------------------------------------------------------- tasks
def sweep(tmp_path_factory, name, *overrides):
    """A real multirun (``train.py -m``) into a fresh dir: the dir."""
    path = tmp_path_factory.mktemp(name)
    run_cli(["-m", *overrides, f"hydra.sweep.dir={path}"])
    return path


@pytest.fixture(scope="module")
def regression_runs(tmp_path_factory):
    # a learning rate 100x apart: different val/loss and val/r2, never a tie
    return sweep(
        tmp_path_factory,
        "regression",
        "task=regression",
        "data=teacher",
        "optimizer.lr=0.0003,0.03",
        *QUICK,
    )


@pytest.fixture(scope="module")
def binary_runs(tmp_path_factory):
    return sweep(
        tmp_path_factory,
        "binary",
        "task=binary",
        "data=teacher",
        "data.kind=binary",
        "optimizer.lr=0.0003,0.03",
        *QUICK,
    )


@pytest.fixture(scope="module")
def deep_linear_runs(tmp_path_factory):
    # the lecture's vanishing (std 0.05) and exploding (std 0.5, diverges at step 1) deep
    # linear nets; the diagnostics go to the loggers, so the CSV logger keeps them
    return sweep(
        tmp_path_factory,
        "deep_linear",
        "+experiment=deep_linear",
        "init=normal",
        "init.std=0.05,0.5",
        "trainer.max_epochs=1",
        "logger=csv",
        "callbacks.progress_bar=null",
    )


def report_error(proc) -> str:
    """The one ``descentlab.report: error:`` line of a report that refused (exit 1)."""
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("descentlab.report: error:"), proc.stderr
    return lines[0]


def test_regression_runs_rank_by_val_loss_ascending_with_their_metrics(regression_runs, tmp_path):
    proc = run_cli([str(regression_runs), "--out", str(tmp_path)], module="descentlab.report")
    assert str(tmp_path / "table.md") in proc.stdout and str(tmp_path / "curves.png") in proc.stdout
    assert "diagnostics" not in proc.stdout and not (tmp_path / "diagnostics.png").exists()
    caption, header, rows = read_table(tmp_path / "table.md")
    assert caption == "ranked by val/loss (lower is better)"  # the runs' objective
    assert header == [
        *(f"{stage}/{name}" for name in ("loss", "mse", "mae", "r2") for stage in STAGES),
        *("best_epoch", "epochs", "status"),
    ]
    losses = [float(row["val/loss"]) for row in rows]
    assert len(rows) == 2 and losses[0] < losses[1]  # best (lowest) first
    runs = {run.label: run for run in load_runs([regression_runs])}
    for row in rows:
        final = runs[row["run"]].final
        assert final["task"] == "regression" and final["objective"] == "val/loss"
        for column in ("val/mse", "val/mae", "val/r2", "test/r2"):
            assert float(row[column]) == pytest.approx(final[column], abs=1e-4)

    figure = draw_curves(list(runs.values()))
    titles = [ax.get_title().split(" (")[0] for ax in figure.axes]
    assert titles == [
        f"{stage} {name}" for name in ("loss", "mse", "mae", "r2") for stage in ("train", "val")
    ]
    assert all(len(ax.lines) == 4 for ax in figure.axes)  # a line and a dot per run
    loss, r2 = figure.axes[1], figure.axes[7]
    assert "½‖ŷ − y‖²" in loss.get_ylabel() and loss.get_yscale() == "log"
    assert "R²" in r2.get_ylabel() and r2.get_yscale() == "linear"


def test_binary_runs_rank_by_val_acc_descending_with_auroc(binary_runs, tmp_path):
    run_cli([str(binary_runs), "--out", str(tmp_path)], module="descentlab.report")
    caption, header, rows = read_table(tmp_path / "table.md")
    assert caption == "ranked by val/acc (higher is better)"
    assert header[:9] == [
        *(f"{stage}/{name}" for name in ("loss", "acc", "auroc") for stage in STAGES)
    ]
    accs = [float(row["val/acc"]) for row in rows]
    assert len(rows) == 2 and accs[0] > accs[1]
    assert all(0.0 <= float(row["test/auroc"]) <= 1.0 for row in rows)
    figure = draw_curves(load_runs([binary_runs]))
    titles = [ax.get_title().split(" (")[0] for ax in figure.axes]
    assert titles[-2:] == ["train auroc", "val auroc"] and len(figure.axes) == 6
    assert "logistic loss" in figure.axes[0].get_ylabel()


def test_metric_r2_ranks_descending(regression_runs, tmp_path):
    run_cli(
        [str(regression_runs), "--out", str(tmp_path), "--metric", "val/r2"],
        module="descentlab.report",
    )
    caption, _, rows = read_table(tmp_path / "table.md")
    assert caption == "ranked by val/r2 (higher is better)"
    r2 = [float(row["val/r2"]) for row in rows]
    assert len(rows) == 2 and r2[0] > r2[1]


def test_a_classification_and_a_regression_run_are_refused(regression_runs, deep_linear_runs):
    classifier, regressor = deep_linear_runs / "0", regression_runs / "0"
    proc = run_cli([str(classifier), str(regressor)], module="descentlab.report", check=False)
    error = report_error(proc)
    assert "different tasks" in error and "classification" in error and "regression" in error
    assert str(classifier) in error and str(regressor) in error


def test_deep_linear_runs_draw_their_gradients_and_activations_per_layer(
    deep_linear_runs, tmp_path
):
    proc = run_cli([str(deep_linear_runs), "--out", str(tmp_path)], module="descentlab.report")
    assert str(tmp_path / "diagnostics.png") in proc.stdout
    assert (tmp_path / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = load_runs([deep_linear_runs])
    vanishing, exploding = sorted(runs, key=lambda r: r.label)  # init.std=0.05, init.std=0.5
    assert exploding.status == "diverged"  # it still logged its first step's diagnostics
    figure = draw_diagnostics(runs)
    grads, variances = figure.axes
    assert [line.get_label() for line in grads.lines] == [r.label for r in runs]  # one per run
    assert [line.get_label() for line in variances.lines] == [r.label for r in runs]
    assert grads.get_yscale() == "log" and variances.get_yscale() == "log"
    assert "step 0" in grads.get_title()
    # the deep_linear net: 12 weight layers, 11 hidden activations, indexed from the input
    grad = {line.get_label(): line for line in grads.lines}
    var = {line.get_label(): line for line in variances.lines}
    assert list(grad[vanishing.label].get_xdata()) == list(range(12))
    assert list(var[vanishing.label].get_xdata()) == list(range(11))
    assert max(grad[vanishing.label].get_ydata()) < min(grad[exploding.label].get_ydata())
    small, large = var[vanishing.label].get_ydata(), var[exploding.label].get_ydata()
    assert small[-1] < small[0] / 1e3 and large[-1] > large[0] * 1e3  # vanish / explode


def fake_runs(tmp_path, runs: dict[str, dict], configs: dict[str, str] | None = None):
    """Run dirs holding only a metrics.json (and a .hydra/config.yaml where given)."""
    for name, metrics in runs.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "metrics.json").write_text(
            json.dumps({"status": "completed", **metrics})
        )
        if configs and name in configs:
            (tmp_path / name / ".hydra").mkdir()
            (tmp_path / name / ".hydra" / "config.yaml").write_text(configs[name])
    return tmp_path


CLASSIFIED = {"train/loss": 0.3, "val/loss": 0.4, "train/acc": 0.9, "val/acc": 0.8}


def data(target: str, path: str | None = None) -> str:
    return f"data:\n  _target_: {target}\n" + (f"  path: {path}\n" if path else "")


def test_runs_of_two_datasets_are_refused_naming_both(tmp_path):
    digits, arrays = "descentlab.data.DigitsDataModule", "descentlab.data.ArraysDataModule"
    fake_runs(
        tmp_path / "targets",
        {"a": CLASSIFIED, "b": CLASSIFIED, "old": CLASSIFIED},
        {"a": data(digits), "b": data(arrays, "x.npz")},
    )
    with pytest.raises(ReportError, match="different data") as refused:
        make_report([tmp_path / "targets"])
    assert digits in str(refused.value) and f"{arrays} path=x.npz" in str(refused.value)
    assert "\n" not in str(refused.value)
    # one data module, two files
    fake_runs(
        tmp_path / "files",
        {"a": CLASSIFIED, "b": CLASSIFIED},
        {"a": data(arrays, "x.npz"), "b": data(arrays, "y.npz")},
    )
    with pytest.raises(ReportError, match="different data.*path=x.npz.*path=y.npz"):
        make_report([tmp_path / "files"])
    # found by a hostile pass: digits with data.classes=[0,1] ranked first among 10-class runs
    fake_runs(
        tmp_path / "classes",
        {"a": CLASSIFIED, "b": CLASSIFIED},
        {"a": data(digits), "b": data(digits) + "  classes: [0, 1]\n"},
    )
    with pytest.raises(ReportError, match=r"different data.*classes=\[0, 1\]"):
        make_report([tmp_path / "classes"])
    # one dataset; a run without a config (from before it was kept) is not checked
    fake_runs(
        tmp_path / "same",
        {"a": CLASSIFIED, "b": CLASSIFIED, "old": CLASSIFIED},
        {"a": data(arrays, "x.npz"), "b": data(arrays, "x.npz")},
    )
    assert (tmp_path / "same" / "report" / "table.md") in make_report([tmp_path / "same"])


def test_runs_from_before_tasks_rank_by_val_acc(tmp_path):
    fake_runs(tmp_path, {"low": {**CLASSIFIED, "val/acc": 0.5}, "high": CLASSIFIED})
    make_report([tmp_path])
    caption, _, rows = read_table(tmp_path / "report" / "table.md")
    assert caption == "ranked by val/acc (higher is better)"
    assert [row["run"] for row in rows] == ["high", "low"]


def test_runs_that_rank_by_different_objectives_ask_for_a_metric(tmp_path):
    fake_runs(
        tmp_path,
        {
            "by_acc": {**CLASSIFIED, "objective": "val/acc", "objective_mode": "max"},
            "by_loss": {**CLASSIFIED, "objective": "val/loss", "objective_mode": "min"},
        },
    )
    with pytest.raises(ReportError, match="different objectives.*--metric") as refused:
        make_report([tmp_path])
    assert "\n" not in str(refused.value)
    make_report([tmp_path], metric="val/loss")
    assert read_table(tmp_path / "report" / "table.md")[0] == "ranked by val/loss (lower is better)"


def test_mode_overrides_the_direction_and_an_unknown_metric_needs_one(tmp_path):
    fake_runs(
        tmp_path,
        {"a": {**CLASSIFIED, "val/odd": 2.0}, "b": {**CLASSIFIED, "val/acc": 0.7, "val/odd": 1.0}},
    )
    make_report([tmp_path], mode="min")  # ranked by val/acc, lowest first
    caption, _, rows = read_table(tmp_path / "report" / "table.md")
    assert caption == "ranked by val/acc (lower is better)" and rows[0]["run"] == "b"
    with pytest.raises(ReportError, match="--mode"):
        make_report([tmp_path], metric="val/odd")
    make_report([tmp_path], metric="val/odd", mode="max")
    caption, header, rows = read_table(tmp_path / "report" / "table.md")
    assert caption == "ranked by val/odd (higher is better)" and rows[0]["run"] == "a"
    assert header.index("val/odd") > header.index("val/acc")  # the task's metrics first


def test_a_penalty_logged_by_one_run_only_is_no_refusal(tmp_path):
    # train/penalty depends on the regularizer, not on the task: a none-vs-l1 sweep compares
    fake_runs(tmp_path, {"none": CLASSIFIED, "l1": {**CLASSIFIED, "train/penalty": 0.1}})
    make_report([tmp_path])
    _, header, rows = read_table(tmp_path / "report" / "table.md")
    assert "train/penalty" in header
    assert {row["run"]: row["train/penalty"] for row in rows} == {"none": "—", "l1": "0.1000"}


def test_the_report_does_not_import_torch(tmp_path):
    fake_runs(tmp_path, {"a": {**CLASSIFIED, "task": "regression", "objective": "val/loss"}})
    code = (
        "import sys; from descentlab.report import main, mode_of; "
        "assert main(sys.argv[1:]) == 0 and mode_of('val/r2') == 'max'; "
        "print('imported:', [m for m in ('torch', 'lightning') if m in sys.modules])"
    )
    proc = run_cli([str(tmp_path)], python_code=code)
    assert "imported: []" in proc.stdout and "ranked by val/loss (lower is better)" in proc.stdout


def test_jobs_killed_before_writing_metrics_are_named_not_dropped(tmp_path):
    """A kill -9 leaves a job dir with its .hydra config and no metrics.json: the report ranks
    the others and says which jobs it could not rank (it once left them out silently)."""
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    fake_sweep(sweep_dir, {"sgd": [1, 2]}, np.random.default_rng(0))
    killed = sweep_dir / "2" / ".hydra"
    killed.mkdir(parents=True)
    (killed / "overrides.yaml").write_text("- optimizer=sgd\n- seed=3\n")
    proc = run_cli([str(sweep_dir)], module="descentlab.report")
    note = f"1 job(s) left no metrics.json (killed before the end, not ranked): {sweep_dir / '2'}"
    assert note in proc.stdout and note in (sweep_dir / "report" / "table.md").read_text()


def test_a_report_that_cannot_be_written_is_one_line(tmp_path):
    fake_sweep(tmp_path, {"sgd": [1]}, np.random.default_rng(0))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_cli(
        [str(tmp_path), "--out", str(blocker / "report")], module="descentlab.report", check=False
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"descentlab.report: error: cannot write the report into {blocker / 'report'}: Not a directory"
    )
