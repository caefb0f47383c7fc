"""Sweeps beyond one process: Hydra's submitit launcher (local executor), the launcher configs.
The SLURM launcher on a real cluster: tests/test_slurm.py."""

from __future__ import annotations

import json

import pytest

from helpers.cli import one_error_line, read_metrics, run_cli

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


@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_(local|slurm)' is validated")
@pytest.mark.parametrize(
    ("trainer", "gpus", "tasks"),
    [
        (["trainer=cpu"], None, 1),
        (["trainer=ddp_cpu"], None, 2),
        (["trainer=gpu"], 1, 1),
        (["trainer=ddp", "trainer.devices=4"], 4, 4),
    ],
)
def test_the_slurm_request_follows_the_trainer(trainer, gpus, tasks):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from descentlab.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=submitit_slurm", *trainer],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher.gpus_per_node == gpus
    assert cfg.hydra.launcher.tasks_per_node == tasks


def test_a_gpu_request_without_a_number_of_devices_is_one_line(tmp_path):
    proc = run_cli(
        ["-m", "hydra/launcher=submitit_slurm", "trainer=gpu", "trainer.devices=auto"]
        + [f"hydra.sweep.dir={tmp_path}"],
        check=False,
    )
    line = one_error_line(proc)
    assert "trainer.devices" in line and "number of GPUs per node" in line
    # the refusal alone, not OmegaConf's "ConfigError raised while resolving interpolation"
    assert line.startswith("descentlab: error: trainer.devices='auto' is invalid"), line


@pytest.mark.parametrize(
    ("num_threads", "launcher", "cores", "expected"),
    [
        ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 2}, 8, 4),
        ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 3}, 8, 2),
        ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 4}, 2, 1),  # never 0
        ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": -1}, 8, 1),  # one job per core
        ("auto", {"_target_": "x.LocalLauncher", "cpus_per_task": 3}, 8, 3),
        ("auto", {"_target_": "x.LocalLauncher", "cpus_per_task": None}, 8, None),
        ("auto", {"_target_": "x.BasicLauncher"}, 8, None),  # one job at a time
        ("auto", None, 8, None),  # not a Hydra job
        (3, {"_target_": "x.JoblibLauncher", "n_jobs": 2}, 8, 3),  # a number wins
        (None, {"_target_": "x.JoblibLauncher", "n_jobs": 2}, 8, None),
    ],
)
def test_threads_per_job_share_the_cores_between_parallel_jobs(
    num_threads, launcher, cores, expected
):
    from omegaconf import OmegaConf

    from descentlab.run.runtime import threads_per_job

    node = OmegaConf.create(launcher) if launcher is not None else None
    assert threads_per_job(num_threads, node, cores=cores) == expected


def test_joblib_runs_jobs_in_worker_processes_with_the_cores_shared(tmp_path):
    import os

    sweep = tmp_path / "sweep"
    # torch would take 2 threads from OMP_NUM_THREADS; num_threads=auto gives cores // n_jobs
    proc = run_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,torch_adam"]
        + [*QUICK, f"hydra.sweep.dir={sweep}"],
        env={"OMP_NUM_THREADS": "2"},
    )
    assert "sweep finished: 2 of 2 jobs completed" in proc.stderr
    expected = max(1, (os.cpu_count() or 1) // 2)
    for job in ("0", "1"):
        assert read_metrics(sweep / job)["status"] == "completed"
        assert (
            f"torch threads: {expected} (num_threads=auto)"
            in (sweep / job / "train.log").read_text()
        )
        card = json.loads((sweep / job / "run.json").read_text())
        assert card["machine"]["torch_threads"] == expected
    # each in a worker process of its own (the basic launcher runs every job in its own
    # process, one after another)
    pids = {json.loads((sweep / job / "run.json").read_text())["process_id"] for job in "01"}
    assert len(pids) == 2, pids


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"],
            "hydra.launcher.n_jobs=0 is invalid",
        ),
        # found by a hostile pass: 999 workers took minutes to start, then the sweep hung
        (
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=999"],
            "(this machine's cores)",
        ),
        # Lightning would start rank 1 by running a loky worker's command line
        (["hydra/launcher=joblib", "trainer=ddp_cpu"], "a launcher whose jobs are train.py"),
        # SLURM takes --time=0 as no limit at all
        (["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=0"], "timeout_min=0"),
        (["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=-5"], "timeout_min=-5"),
    ],
)
def test_launcher_options_a_plugin_would_take_with_a_traceback_are_one_line(
    tmp_path, overrides, words
):
    proc = run_cli(
        ["-m", *overrides, "optimizer=sgd,adam", f"hydra.sweep.dir={tmp_path}"], check=False
    )
    assert words in one_error_line(proc)
    assert not any(tmp_path.glob("*/metrics.json"))  # refused before any job ran


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    from pathlib import Path

    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_killed_joblib_sweep_leaves_no_worker_training_and_its_jobs_resumable(tmp_path):
    # found by using it: after kill -9 of the sweep, joblib's workers trained on for minutes,
    # holding their run dirs, so running the same command again found them in use
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers.cli import ROOT

    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,torch_adam"]
    args += [*QUICK, "callbacks.early_stopping=null", "trainer.max_epochs=2000"]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
        (sweep / job / "checkpoints" / "last.ckpt").exists() for job in "01"
    ):
        time.sleep(0.2)
    workers = _children(proc.pid)
    assert workers, "no worker process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.5)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "joblib workers still running a minute after the sweep was killed"
    for job in "01":  # each stopped as a SIGTERM stops a run: resumable, and says so
        metrics = read_metrics(sweep / job)
        assert metrics["status"] == "interrupted", metrics
        assert "stopped by SIGTERM" in metrics["reason"], metrics["reason"]
        assert (sweep / job / "checkpoints" / "last.ckpt").exists()
