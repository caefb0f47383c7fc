"""W&B sweep files: the exact commands an agent would run compose and train (offline)."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import sys
from pathlib import Path

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

from helpers.cli import ROOT, run_cli
from helpers.compose import compose_config
from helpers.wandb_records import records

SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
LOGGED = {"val/acc", "val/loss", "train/acc", "train/loss", "test/acc", "test/loss"}


def points(sweep: dict, n_random: int = 3) -> list[dict]:
    """Grid: every combination. Random/Bayes: a few draws from the declared distributions."""
    params = sweep["parameters"]
    fixed = {k: v["value"] for k, v in params.items() if "value" in v}
    if sweep["method"] == "grid":
        keys = [k for k in params if "values" in params[k]]
        return [
            {**fixed, **dict(zip(keys, combo, strict=True))}
            for combo in itertools.product(*(params[k]["values"] for k in keys))
        ]
    rng = random.Random(0)
    draws = []
    for _ in range(n_random):
        point = dict(fixed)
        for key, spec in params.items():
            if spec.get("distribution") == "log_uniform_values":
                point[key] = math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"])))
            elif spec.get("distribution") == "uniform":
                point[key] = rng.uniform(spec["min"], spec["max"])
            elif "values" in spec:
                point[key] = rng.choice(spec["values"])
        draws.append(point)
    return draws


def agent_command(sweep: dict, point: dict) -> list[str]:
    """The command line ``wandb agent`` runs for ``point`` (as wandb_agent.Agent._command_run builds it)."""
    template = create_sweep_command(sweep["command"])
    variables = create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    variables.update(
        interpreter=[sys.executable], program=[str(ROOT / sweep["program"])], env=["/usr/bin/env"]
    )
    command = []
    for chunk in map(str, template):
        command += (
            variables.get(chunk[2:-1], [])
            if chunk.startswith("${") and chunk.endswith("}")
            else [chunk]
        )
    return command


def hydra_overrides(command: list[str]) -> list[str]:
    return command[command.index(str(ROOT / "train.py")) + 1 :]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_four_sweeps_exist():
    assert {p.stem for p in SWEEPS} >= {"optimizer_lr", "init", "regularizer", "bayes_lr_wd"}


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_file_is_well_formed(path):
    sweep = load(path)
    assert sweep["program"] == "train.py" and (ROOT / sweep["program"]).is_file()
    assert sweep["method"] in ("grid", "random", "bayes")
    assert sweep["metric"]["name"] in LOGGED and sweep["metric"]["goal"] in ("maximize", "minimize")
    assert "${args_no_hyphens}" in sweep["command"] and "logger=wandb" in sweep["command"]


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_agent_command_composes(path, tmp_path):
    sweep = load(path)
    commands = [agent_command(sweep, p) for p in points(sweep)]
    assert len(commands) >= 3
    for command in commands:
        cfg = compose_config(hydra_overrides(command), tmp_path)
        assert "wandb" in cfg.logger
        for override in hydra_overrides(command):
            key, _, value = override.partition("=")
            if key in ("optimizer", "init"):
                assert cfg[key]._target_  # the group option was selected


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_one_point_per_sweep_runs_end_to_end_offline(path, tmp_path):
    sweep = load(path)
    command = agent_command(sweep, points(sweep)[-1])
    run_dir = tmp_path / "run"
    run_cli(
        [*hydra_overrides(command), "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}"],
        env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)},
    )
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    # fast_dev_run swaps loggers for dummies during fit, so check the run's config record:
    # the swept values reached W&B. (That train.py logs the sweep metrics to W&B is tested
    # in test_train.py::test_wandb_logs_offline_and_the_metrics_read_back.)
    config = {}
    for record in records(files[0]):
        if record.WhichOneof("record_type") == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    resolved = json.loads((run_dir / "metrics.json").read_text())
    assert resolved  # the run finished
    for key, value in points(sweep)[-1].items():
        node = config
        for part in key.split("."):
            node = node[part] if part in node else node.get("value", {}).get(part)
        if key in ("optimizer", "init", "regularizer"):
            continue  # group choices are not values in the composed config
        assert (
            node == pytest.approx(value)
            if isinstance(value, float)
            else str(node).replace(" ", "") == str(value).replace(" ", "")
        ), key


@pytest.mark.slow
def test_a_diverging_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    # Job 1's learning rate is multiplied by 1e12 after two good epochs: it diverges in epoch 2.
    boom = "model.scheduler={_target_:torch.optim.lr_scheduler.MultiStepLR,_partial_:true,milestones:[2],gamma:1.0}"
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [
            "-m",
            "optimizer=sgd",
            boom,
            "model.scheduler.gamma=1.0,1e12",
            "trainer.max_epochs=4",
            "callbacks.progress_bar=null",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert "1 of 2 jobs completed" in proc.stderr and "job 1 diverged" in proc.stderr
    good, bad = (json.loads((sweep / n / "metrics.json").read_text()) for n in ("0", "1"))
    assert good["status"] == "completed" and "test/acc" in good
    assert bad["status"] == "diverged" and re.search(r"became (nan|inf|-inf)", bad["reason"])
    assert bad["best_epoch"] == 1 and bad["val/loss"] < 10  # the epochs before it are kept

    report = run_cli([str(sweep), "--out", str(tmp_path / "report")], module="descentlab.report")
    rows = [
        r for r in (tmp_path / "report" / "table.md").read_text().splitlines() if r.startswith("| ")
    ]
    assert "[diverged]" not in rows[1] and "[diverged]" in rows[2] and "diverged" in rows[2]
    assert "became" in report.stdout  # the reason is listed under the table
    from descentlab.report import load_runs

    curves = {r.label: r.curves for r in load_runs([sweep])}
    diverged = next(label for label in curves if "[diverged]" in label)
    assert len(curves[diverged]["val/loss"]) == 2  # its curves up to the divergence


def test_w_and_b_sweep_files_are_not_a_config_group():
    # They are W&B's files (${env}, ${args_no_hyphens}), not Hydra's: offered as a config
    # group in --help, selecting one failed with "Interpolation key 'env' not found".
    proc = run_cli(["--help"])
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "optimizer:" in groups and "sweep" not in groups


def test_a_sweep_where_no_job_completed_exits_1(tmp_path):
    """Failed jobs do not stop a sweep (exit 0 when any completed), but a sweep that produced
    nothing must be visible to a script: it exited 0 with '0 of 2 jobs completed'."""
    proc = run_cli(
        ["-m", "optimizer.lr=-1,-2", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "0 of 2 jobs completed" in proc.stderr and "job 1 failed: optimizer.lr=-2" in proc.stderr
