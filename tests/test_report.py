"""The report: plots and a ranked table from a real multirun."""

from __future__ import annotations

import json

import pytest

from descentlab.report import ReportError, draw_curves, load_runs, make_report, markdown_table
from helpers.cli import run_cli


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
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| run |") and len(table) == 4
    labels = [row.split("|")[1].strip() for row in table[2:]]
    assert set(labels) == {"optimizer=sgd", "optimizer=adam"}  # only the differing override
    accs = {row.split("|")[1].strip(): float(row.split("|")[6]) for row in table[2:]}
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
