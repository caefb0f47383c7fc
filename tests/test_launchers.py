"""Sweeps beyond one process: Hydra's submitit launcher (local executor), SLURM requeue."""

from __future__ import annotations

import csv

import pytest

from helpers.cli import read_metrics, run_cli

QUICK = ["callbacks.progress_bar=null", "logger=csv", "trainer.max_epochs=1"]


@pytest.mark.slow
def test_submitit_local_runs_the_jobs_in_parallel_processes_and_report_reads_them(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "optimizer=sgd,adam",
            *QUICK,
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert "2 of 2 jobs completed" in proc.stderr
    jobs = [sweep / "0", sweep / "1"]
    for job in jobs:
        assert read_metrics(job)["status"] == "completed"
    # submitit ran each job as its own process (its own log files under .submitit/)
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2
    # ... at the same time: each job started (wrote its config) before the other ended
    start = [(job / ".hydra" / "config.yaml").stat().st_mtime for job in jobs]
    end = [(job / "metrics.json").stat().st_mtime for job in jobs]
    assert start[0] < end[1] and start[1] < end[0], (start, end)

    report = run_cli([str(sweep), "--out", str(tmp_path / "report")], module="descentlab.report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "optimizer=sgd" in table and "optimizer=adam" in table, report.stdout


@pytest.mark.slow
def test_a_requeued_slurm_job_resumes_from_its_own_last_checkpoint(tmp_path):
    run_cli([*QUICK, f"hydra.run.dir={tmp_path}"])
    # SLURM starts a requeued job's command again, with SLURM_RESTART_COUNT=1
    run_cli(
        [*QUICK[:-1], "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}"],
        env={"SLURM_RESTART_COUNT": "1"},
    )
    metrics = read_metrics(tmp_path)
    assert metrics["epochs"] == 2 and metrics["status"] == "completed"
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert epochs == [0, 1]  # epoch 0 trained by the first run, epoch 1 by the requeued one
    # without the requeue, the same command is refused: it would overwrite the run
    proc = run_cli([*QUICK[:-1], "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}"], check=False)
    assert proc.returncode == 1 and "already holds a run" in proc.stderr


@pytest.mark.filterwarnings(
    r"ignore:\s*'hydra/launcher/submitit_(local|slurm)' is validated"
)  # config.py
@pytest.mark.parametrize("launcher", ["submitit_slurm", "submitit_local"])
def test_the_launcher_configs_build_submitits_launchers(launcher):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from descentlab.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"hydra/launcher={launcher}",
                "hydra.launcher.nodes=2",
                "hydra.launcher.gpus_per_node=4",
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    built = instantiate(cfg.hydra.launcher)
    assert (
        type(built).__name__
        == {"submitit_slurm": "SlurmLauncher", "submitit_local": "LocalLauncher"}[launcher]
    )
    assert built.params["nodes"] == 2 and built.params["gpus_per_node"] == 4
    if launcher == "submitit_slurm":  # one task per GPU; SIGUSR1 before the limit, requeued
        assert built.params["tasks_per_node"] == 4
        assert built.params["signal_delay_s"] > 0 and built.params["max_num_timeout"] > 0
