"""``python train.py -m hparams_search=optuna``: the thin Optuna sweeper (hydra_plugins/descentlab_optuna).

In-process: the search space's parsing, a failed job told as FAIL, the study continued with
new job numbers, the guard's rule. One real CLI sweep, re-run to continue its study.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from descentlab.config import _objective_direction
from descentlab.errors import ConfigError
from helpers.cli import one_error_line, run_cli
from hydra_plugins.descentlab_optuna.config import TARGET, continues_study
from hydra_plugins.descentlab_optuna.space import override_text, parse, plain_value
from hydra_plugins.descentlab_optuna.sweeper import RESULTS, OptunaSweeper


def space_of(**params: str):
    return parse((f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in params.items())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("interval(0, 1)", FloatDistribution(0.0, 1.0)),  # Hydra's interval is a float one
        ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("int(interval(1, 8))", IntDistribution(1, 8)),
        ("tag(log, int(interval(1, 64)))", IntDistribution(1, 64, log=True)),
        ("range(1, 10, 3)", IntDistribution(1, 7, step=3)),  # Hydra's range stops before 10
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        (
            "choice([64], [128, 64], relu, 0.5, true)",
            CategoricalDistribution(["[64]", "[128,64]", "relu", 0.5, True]),
        ),
        ("torch_adam,torch_sgd", CategoricalDistribution(["torch_adam", "torch_sgd"])),
    ],
)
def test_each_override_kind_is_the_right_optuna_distribution(text, expected):
    space, fixed = space_of(x=text)
    assert space == {"x": expected} and fixed == []


def test_a_plain_value_is_fixed_and_the_command_line_wins_over_params():
    entries = [
        ("hydra.sweeper.params.optimizer.lr", "optimizer.lr=interval(0.1, 0.2)"),
        ("hydra.sweeper.params.model.net.dropout", "model.net.dropout=interval(0, 0.5)"),
        ("optimizer.lr", "optimizer.lr=0.01"),
        ("trainer.max_epochs", "trainer.max_epochs=2"),
    ]
    space, fixed = parse(entries)
    assert list(space) == ["model.net.dropout"]
    assert fixed == ["optimizer.lr=0.01", "trainer.max_epochs=2"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("interval(1,)", "override grammar"),
        ("interval(2, 1)", "low <= high"),
        ("tag(log, interval(0, 1))", "low > 0"),
        ("range(5, 1)", "holds no value"),
    ],
)
def test_a_bad_search_space_entry_is_a_config_error_naming_its_key(text, says):
    with pytest.raises(ConfigError) as err:
        space_of(**{"optimizer.lr": text})
    assert err.value.key == "hydra.sweeper.params.optimizer.lr"
    assert says in str(err.value) and "\n" not in str(err.value)


def test_sampled_values_become_overrides_and_plain_values():
    assert override_text("optimizer.lr", 1e-05) == "optimizer.lr=1e-05"
    assert override_text("model.net.hidden_dims", "[128,64]") == "model.net.hidden_dims=[128,64]"
    assert override_text("model.net.bias", False) == "model.net.bias=false"
    assert plain_value("model.net.hidden_dims", "[128,64]") == [128, 64]
    assert plain_value("model.net.activation", "relu") == "relu"


def test_the_default_direction_follows_the_value_a_job_returns():
    assert _objective_direction(None, "val/acc") == "maximize"  # task.mode would say min
    assert _objective_direction(None, "val/loss") == "minimize"
    assert _objective_direction("val/loss", "val/acc") == "minimize"  # optimized_metric wins
    with pytest.raises(ConfigError, match="hydra.sweeper.direction"):
        _objective_direction("val/foo", "val/acc")


class FakeLauncher:
    """Returns the prepared results in order; records the job numbers it was given."""

    def __init__(self, results):
        self.results, self.starts = list(results), []

    def launch(self, batch, initial_job_idx):
        self.starts.append(initial_job_idx)
        returns = []
        for overrides in batch:
            result = self.results.pop(0)
            failed = isinstance(result, Exception)
            job = JobReturn(
                overrides=overrides, status=JobStatus.FAILED if failed else (JobStatus.COMPLETED)
            )
            job.return_value = result
            returns.append(job)
        return returns


def make_sweeper(tmp_path: Path, results, n_trials: int, n_jobs: int = 2) -> OptunaSweeper:
    sweeper = OptunaSweeper(
        sampler=optuna.samplers.TPESampler(seed=0),
        direction="maximize",
        study_name="train",
        storage=f"sqlite:///{tmp_path}/optuna.db",
        n_trials=n_trials,
        n_jobs=n_jobs,
        params=OmegaConf.create({"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"}),
    )
    sweeper.config = OmegaConf.create({"optimized_metric": None, "task": {"objective": "val/acc"}})
    sweeper.sweep_dir, sweeper.launcher = tmp_path, FakeLauncher(results)
    sweeper.validate_batch_is_legal = lambda batch: None  # no config loader here
    return sweeper


def test_failed_jobs_are_told_fail_and_a_rerun_continues_after_every_job(tmp_path):
    # an exception, a recorded failure (None), a diverged value (NaN), one good job
    make_sweeper(tmp_path, [RuntimeError("boom"), None, math.nan, 0.7], n_trials=4).sweep(
        ["trainer.max_epochs=2"]
    )
    study = optuna.load_study(study_name="train", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL] * 3 + [TrialState.COMPLETE]
    results = OmegaConf.load(tmp_path / RESULTS)
    assert results.best_value == 0.7 and results.best_job == 3
    assert results.trials == {"complete": 1, "failed": 3, "total": 4}

    study.ask()  # a trial an interrupted sweep left RUNNING
    (tmp_path / "5").mkdir()  # a job dir with no trial: not written over either
    again = make_sweeper(tmp_path, [0.8, 0.6], n_trials=2)
    again.sweep([])
    assert again.launcher.starts == [6]
    trials = optuna.load_study(study_name="train", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert [t.state for t in trials[4:]] == [
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]
    assert [t.user_attrs["job"] for t in trials[5:]] == [6, 7]
    assert OmegaConf.load(tmp_path / RESULTS).best_value == 0.8


class StoppedLauncher(FakeLauncher):
    """Job 0 finishes and records its metrics; then the sweep is stopped (SIGTERM: exit 143)."""

    def launch(self, batch, initial_job_idx):
        self.starts.append(initial_job_idx)
        done = self.sweep_dir / str(initial_job_idx)
        done.mkdir(parents=True)
        (done / "metrics.json").write_text('{"status": "completed", "val/acc": 0.9}')
        raise SystemExit(143)


def test_a_stop_keeps_the_value_of_a_job_that_had_finished(tmp_path):
    # found by a hostile pass: a SIGTERM that came as a trial's job ended ("the run finished
    # (completed)") left that trial FAIL, and the re-run trained the same point again
    sweeper = make_sweeper(tmp_path, [], n_trials=2)
    sweeper.launcher = StoppedLauncher([])
    sweeper.launcher.sweep_dir = tmp_path
    with pytest.raises(SystemExit):
        sweeper.sweep([])
    trials = optuna.load_study(study_name="train", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert [(t.state, t.value) for t in trials] == [
        (TrialState.COMPLETE, 0.9),
        (TrialState.FAIL, None),
    ]


def test_the_guard_lets_only_an_optuna_study_continue_in_its_own_sweep_dir(tmp_path):
    db = tmp_path / "sweep" / "optuna.db"
    optuna_sweeper = {"_target_": TARGET, "storage": f"sqlite:///{db}"}
    assert not continues_study(optuna_sweeper, db.parent)  # no study yet
    db.parent.mkdir()
    db.touch()
    assert continues_study(optuna_sweeper, db.parent)
    assert not continues_study(optuna_sweeper, tmp_path / "other")  # its db is elsewhere
    basic = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}
    assert not continues_study(basic, db.parent)


SWEEP = [
    "-m",
    "hparams_search=optuna",
    "trainer.max_epochs=2",
    "logger=none",
    "callbacks.progress_bar=null",
    "trainer.deterministic=true",
]


def test_a_cli_study_runs_its_trials_and_the_same_command_continues_it(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli([*SWEEP, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"])
    metrics = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}
    assert sorted(metrics) == ["0", "1", "2"]
    assert (sweep / "optuna.db").is_file()
    results = OmegaConf.load(sweep / RESULTS)
    values = {job: m[m["objective"]] for job, m in metrics.items()}
    assert results.best_value == pytest.approx(max(values.values()))
    assert set(results.best_params) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "model.net.hidden_dims",
        "model.net.dropout",
    }
    before = {job: (sweep / job / "metrics.json").read_bytes() for job in metrics}

    run_cli([*SWEEP, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"])
    study = optuna.load_study(study_name="train", storage=f"sqlite:///{sweep}/optuna.db")
    assert len(study.trials) == 5
    jobs = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert jobs == ["0", "1", "2", "3", "4"]
    assert all((sweep / job / "metrics.json").read_bytes() == b for job, b in before.items())
    assert OmegaConf.load(sweep / RESULTS).trials.total == 5
    # found by a hostile pass: the seeded sampler started its sequence again, so the
    # continuation trained the first trials' points a second time
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == len(points), points
    # another problem into the same study would be ranked with it (a 2-class run came first)
    other = [*SWEEP, "hydra.sweeper.n_trials=1", "data.classes=[0,1]", f"hydra.sweep.dir={sweep}"]
    line = one_error_line(run_cli(other, check=False))
    assert "already holds a multirun of another command" in line, line
    assert (
        len(optuna.load_study(study_name="train", storage=f"sqlite:///{sweep}/optuna.db").trials)
        == 5
    )


@pytest.mark.parametrize("n_trials", ["0", "-1"])
def test_a_bad_trial_count_is_one_line_and_leaves_no_sweep_dir(tmp_path, n_trials):
    # found by a hostile pass: 0 trials "finished" with exit 0; -1 left the dir with a lock
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [*SWEEP, f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={sweep}"], check=False
    )
    assert f"hydra.sweeper.n_trials={n_trials} is invalid" in one_error_line(proc)
    assert not sweep.exists()


def test_a_bad_search_space_value_is_one_line(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli([*SWEEP, "optimizer.lr=interval(1,)", f"hydra.sweep.dir={sweep}"], check=False)
    assert "interval(1,)" in one_error_line(proc)
    proc = run_cli([*SWEEP, "optimizer.lr=interval(2,1)", f"hydra.sweep.dir={sweep}"], check=False)
    assert "optimizer.lr='interval(2,1)' is invalid" in one_error_line(proc)
    assert not list(sweep.glob("*/metrics.json"))
