"""Seed statistics in the report (``--group-by``): groups, mean ± std, SE, paired differences.

The runs are written here in the shape a real run leaves (``metrics.json``, ``history.json``,
``.hydra/overrides.yaml``, ``config.yaml``, ``hydra.yaml``); no training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from descentlab.errors import ReportError
from descentlab.report import load_runs, make_report
from descentlab.seed_stats import (
    Stats,
    band,
    describe,
    group_runs,
    mean_curve,
    paired_difference,
)
from helpers.cli import run_cli
from helpers.fake_runs import DEFAULT_OPTIMIZER, METRICS, final_of, sweep, write_run


def groups_md(path):
    """groups.md: its caption, the group rows ({column: cell}) and the paired rows."""
    lines = path.read_text().splitlines()

    def table(start):
        header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
        rows = []
        for line in lines[start + 2 :]:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append(dict(zip(header, cells, strict=True)))
        return rows

    paired_at = [i for i, line in enumerate(lines) if line.startswith("| group | metric")]
    return lines[0], table(2), table(paired_at[0]) if paired_at else []


# --------------------------------------------------------------------------------- the math
@pytest.mark.parametrize("n", [2, 3, 7])
def test_mean_std_and_se_are_numpys(n):
    values = list(np.random.default_rng(n).normal(0.8, 0.05, n))
    stats = describe(values)
    std = np.std(values, ddof=1)
    assert stats.n == n and stats.mean == pytest.approx(np.mean(values), abs=1e-15)
    assert stats.std == pytest.approx(std, rel=1e-12)
    assert stats.se == pytest.approx(std / np.sqrt(n), rel=1e-12)


def test_one_value_has_no_std_and_none_has_no_mean():
    assert describe([0.5]) == Stats(1, 0.5, None, None)
    assert describe([]) == Stats(0, None, None, None)
    assert band([Stats(1, 0.5, None, None)]) is None


def test_the_paired_difference_is_over_the_shared_seeds_only():
    rng = np.random.default_rng(0)
    a = {str(s): float(v) for s, v in zip(range(1, 7), rng.uniform(size=6), strict=True)}
    b = {str(s): float(v) for s, v in zip(range(3, 10), rng.uniform(size=7), strict=True)}
    shared = ["3", "4", "5", "6"]
    d = np.array([b[s] - a[s] for s in shared])
    for mode, wins in (("max", int((d > 0).sum())), ("min", int((d < 0).sum()))):
        paired = paired_difference(a, b, mode)
        assert paired.shared == 4 and paired.wins == wins
        assert paired.mean == pytest.approx(d.mean(), rel=1e-12)
        assert paired.se == pytest.approx(np.std(d, ddof=1) / np.sqrt(4), rel=1e-12)
    assert paired_difference(a, b, None).wins is None  # which way is better is not known


def test_the_verdict_compares_the_mean_difference_with_two_standard_errors():
    a = {"1": 0.5, "2": 0.6, "3": 0.7}
    assert paired_difference(a, {s: v + 0.1 for s, v in a.items()}, "max").verdict.startswith(
        "exceeds noise"
    )  # the same +0.1 on every seed: SE 0
    noisy = {"1": 0.6, "2": 0.5, "3": 0.75}  # d = +0.1, −0.1, +0.05: d̄ 0.0167, SE 0.06
    paired = paired_difference(a, noisy, "max")
    assert paired.verdict.startswith("within noise") and paired.wins == 2
    assert "fewer than 2" in paired_difference({"1": 0.5}, {"1": 0.6}, "max").verdict


# ----------------------------------------------------------------------------------- groups
def test_groups_md_holds_each_groups_mean_std_se_and_the_paired_difference(tmp_path):
    rng = np.random.default_rng(7)
    finals = sweep(tmp_path, {"sgd": [1, 2, 3, 4], "adam": [2, 3, 4, 5, 6]}, rng)
    paths = make_report([tmp_path], group_by=["optimizer"])
    assert [p.name for p in paths] == ["table.md", "curves.png", "groups.md", "curves_by_group.png"]
    caption, rows, paired_rows = groups_md(tmp_path / "report" / "groups.md")
    assert "ranked by the mean of val/acc (higher is better)" in caption
    means = {
        opt: np.mean([f["val/acc"] for (o, _), f in finals.items() if o == opt])
        for opt in ("sgd", "adam")
    }
    best, other = sorted(means, key=means.get, reverse=True)
    assert [row["group"] for row in rows] == [f"optimizer={best}", f"optimizer={other}"]
    for row in rows:
        optimizer = row["group"].split("=")[1]
        assert row["n"] == str(4 if optimizer == "sgd" else 5)
        assert row["unfinished (left out)"] == "0"
        for column in ("val/acc", "train/loss", "test/acc"):
            values = [f[column] for (o, _), f in finals.items() if o == optimizer]
            mean, std = (float(x) for x in row[column].split(" ± "))
            assert mean == pytest.approx(np.mean(values), abs=5e-5)
            assert std == pytest.approx(np.std(values, ddof=1), abs=5e-5)
            se = np.std(values, ddof=1) / np.sqrt(len(values))
            assert float(row[f"{column} SE"]) == pytest.approx(se, abs=5e-5)
    # the ranking metric is the first column, then the others as table.md orders them
    assert list(rows[0])[3:7] == ["val/acc", "val/acc SE", "train/loss", "train/loss SE"]

    by_metric = {row["metric"]: row for row in paired_rows}
    assert set(by_metric) == {f"{s}/{n}" for s in ("train", "val", "test") for n in METRICS}
    shared = [2, 3, 4]  # seeds 1, 5 and 6 ran in one group only
    for metric, row in by_metric.items():
        d = np.array([finals[other, s][metric] - finals[best, s][metric] for s in shared])
        better = d < 0 if metric.endswith("loss") else d > 0
        assert row["group"] == f"optimizer={other}"
        assert row["shared seeds"] == f"3 of {4 if other == 'sgd' else 5}"
        assert float(row["d̄"]) == pytest.approx(d.mean(), abs=5e-5)
        se = np.std(d, ddof=1) / np.sqrt(3)
        assert float(row["SE"]) == pytest.approx(se, abs=5e-5)
        assert row["wins"] == f"{int(better.sum())} of 3"
        noise = "exceeds noise" if abs(d.mean()) > 2 * se else "within noise"
        assert row["verdict"].startswith(noise)


def test_unfinished_runs_are_left_out_and_counted(tmp_path):
    rng = np.random.default_rng(3)
    finals = sweep(tmp_path, {"sgd": [1, 2, 3]}, rng)
    write_run(
        tmp_path / "9",
        seed=3,  # a seed that a finished run of the group has too: a failed try of it
        overrides=["optimizer=sgd", "seed=3", "trainer.max_epochs=4"],
        final={**final_of(rng), "val/acc": 99.0},
        status="diverged",
        rng=rng,
    )
    (group,) = group_runs(load_runs([tmp_path]), ["optimizer"])
    assert group.seeds == ["1", "2", "3"] and len(group.left_out) == 1
    values = [finals["sgd", s]["val/acc"] for s in (1, 2, 3)]
    assert group.stats("val/acc").mean == pytest.approx(np.mean(values), rel=1e-12)
    make_report([tmp_path], group_by=["optimizer"])
    _, (row,), _ = groups_md(tmp_path / "report" / "groups.md")
    assert row["n"] == "3" and row["unfinished (left out)"] == "1"
    assert "nothing to compare" in (tmp_path / "report" / "groups.md").read_text()


def test_a_key_the_runs_do_not_override_is_read_from_hydras_choice_and_the_config(tmp_path):
    rng = np.random.default_rng(4)
    for job, (overrides, seed, dropout) in enumerate(
        (
            (["seed=1"], 1, 0.0),  # the default optimizer, no override
            (["seed=2"], 2, 0.0),
            (["optimizer=sgd", "seed=1", "model.net.dropout=0.5"], 1, 0.5),
            (["optimizer=sgd", "seed=2", "model.net.dropout=0.5"], 2, 0.5),
        )
    ):
        write_run(
            tmp_path / str(job),
            seed=seed,
            overrides=overrides,
            final=final_of(rng),
            rng=rng,
            dropout=dropout,
        )
    groups = group_runs(load_runs([tmp_path]), ["optimizer", "model.net.dropout"])
    assert [g.label for g in groups] == [
        f"optimizer={DEFAULT_OPTIMIZER} model.net.dropout=0.0",  # from hydra.yaml and config
        "optimizer=sgd model.net.dropout=0.5",
    ]
    assert [g.seeds for g in groups] == [["1", "2"], ["1", "2"]]
    # "0.50" overrides the same value the config holds as 0.5
    (tmp_path / "3" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["optimizer=sgd", "seed=2", "model.net.dropout=0.50"])
    )
    assert len(group_runs(load_runs([tmp_path]), ["optimizer"])[1].runs) == 2


def test_mean_curves_keep_the_epochs_every_seed_reached(tmp_path):
    rng = np.random.default_rng(5)
    curves = [
        {k: list(rng.uniform(0.1, 1, epochs)) for k in ("train/loss", "val/loss")}
        for epochs in (5, 3, 4)  # early stopping ended two seeds sooner
    ]
    for job, curve in enumerate(curves):
        write_run(
            tmp_path / str(job),
            seed=job,
            overrides=["optimizer=sgd", f"seed={job}"],
            final=final_of(rng),
            curves=curve,
        )
    (group,) = group_runs(load_runs([tmp_path]), ["optimizer"])
    epochs, stats = mean_curve(group, "val/loss")
    assert epochs == [0, 1, 2]
    for epoch, s in zip(epochs, stats, strict=True):
        values = [c["val/loss"][epoch] for c in curves]
        assert s.mean == pytest.approx(np.mean(values)) and s.std == pytest.approx(
            np.std(values, ddof=1)
        )
    low, high = band(stats)
    assert low[0] == pytest.approx(stats[0].mean - stats[0].std)
    assert high[0] == pytest.approx(stats[0].mean + stats[0].std)


# -------------------------------------------------------------------------------- refusals
def test_a_group_whose_runs_differ_in_another_key_is_refused_naming_it(tmp_path):
    rng = np.random.default_rng(1)
    for job, dropout in enumerate((0.1, 0.5)):
        write_run(
            tmp_path / str(job),
            seed=job,
            final=final_of(rng),
            rng=rng,
            dropout=dropout,
            overrides=["optimizer=sgd", f"seed={job}", f"model.net.dropout={dropout}"],
        )
    with pytest.raises(ReportError) as refused:
        group_runs(load_runs([tmp_path]), ["optimizer"])
    message = str(refused.value)
    assert message.startswith("runs of group optimizer=sgd differ in model.net.dropout (0.1 in ")
    assert "0.5 in" in message and message.endswith("add it to --group-by")
    assert "\n" not in message
    assert [g.label for g in group_runs(load_runs([tmp_path]), ["optimizer", "model.net.dropout"])]


def test_two_runs_of_a_group_with_one_seed_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    for job in (0, 1):
        write_run(
            tmp_path / str(job),
            seed=7,
            overrides=["optimizer=sgd", "seed=7"],
            final=final_of(rng),
            rng=rng,
        )
    with pytest.raises(ReportError, match=r"^runs of group optimizer=sgd repeat seed=7 \(") as err:
        make_report([tmp_path], group_by=["optimizer"])
    assert "\n" not in str(err.value) and not (tmp_path / "report").exists()  # nothing written


def test_an_unknown_key_is_refused_naming_the_keys_the_runs_have(tmp_path):
    sweep(tmp_path, {"sgd": [1, 2]}, np.random.default_rng(0))
    with pytest.raises(ReportError) as refused:
        group_runs(load_runs([tmp_path]), ["optimiser"])
    message = str(refused.value)
    assert "no run sets 'optimiser'" in message and "\n" not in message
    assert "override optimizer, trainer.max_epochs" in message
    assert "config groups are data, model, optimizer" in message
    with pytest.raises(ReportError, match="seed"):
        group_runs(load_runs([tmp_path]), ["seed"])


# ------------------------------------------------------------------------------------ CLI
def test_the_cli_writes_groups_md_and_curves_by_group(tmp_path):
    sweep(tmp_path, {"sgd": [1, 2, 3], "momentum": [1, 2, 3]}, np.random.default_rng(11))
    proc = run_cli([str(tmp_path), "--group-by", "optimizer"], module="descentlab.report")
    report = tmp_path / "report"
    assert str(report / "groups.md") in proc.stdout
    assert str(report / "curves_by_group.png") in proc.stdout
    assert "## Paired differences against optimizer=" in proc.stdout
    png = (report / "curves_by_group.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    _, rows, paired = groups_md(report / "groups.md")
    assert {row["group"] for row in rows} == {"optimizer=sgd", "optimizer=momentum"}
    assert all(row["shared seeds"] == "3 of 3" for row in paired)


def test_the_cli_refuses_a_bad_key_in_one_line(tmp_path):
    sweep(tmp_path, {"sgd": [1, 2]}, np.random.default_rng(0))
    proc = run_cli(
        [str(tmp_path), "--group-by", "optimizer,nope"], module="descentlab.report", check=False
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("descentlab.report: error: --group-by nope")
    assert not (tmp_path / "report").exists()
    # found by a hostile pass: an empty --group-by was no grouping at all, without a word
    proc = run_cli([str(tmp_path), "--group-by", ""], module="descentlab.report", check=False)
    assert proc.returncode == 2 and "needs at least one key" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "report").exists()


def test_the_group_figure_draws_a_mean_and_a_band_per_group(tmp_path):
    from descentlab.report import draw_curves

    sweep(tmp_path, {"sgd": [1, 2], "adam": [1]}, np.random.default_rng(12))
    runs = load_runs([tmp_path])
    figure = draw_curves(runs, group_runs(runs, ["optimizer"]))
    for ax in figure.axes:
        assert "mean ± std over seeds" in ax.get_title()
        assert sorted(line.get_label() for line in ax.lines) == [
            "optimizer=adam (n=1)",
            "optimizer=sgd (n=2)",
        ]
        assert len(ax.collections) == 1  # a band for sgd's two seeds, none for adam's one
    assert not math.isnan(figure.axes[0].lines[0].get_ydata()[0])
