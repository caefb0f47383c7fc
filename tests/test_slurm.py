"""Sweeps on a real one-node SLURM cluster (tests/helpers/slurm.py starts it; skipped with the
reason where it cannot): ``hydra/launcher=submitit_slurm`` with its shipped defaults on a CPU
partition, a job requeued mid-run, a job that reaches its time limit, DDP under ``srun``,
and sbatch's refusals as one line."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.cli import ROOT, one_error_line, read_metrics, run_cli

SLURM = ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug"]
QUICK = ["callbacks.progress_bar=null", "logger=csv"]
# ~0.05 s an epoch on digits: long enough to be interrupted, no early stop
LONG = [*QUICK, "callbacks.early_stopping=null"]
COMPARED = ["val/loss", "val/acc", "test/loss", "test/acc", "train/loss", "epochs", "global_step"]


def trained_epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("train/loss")]


def start_sweep(args: list[str], sweep: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *SLURM, *args, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(last: Path, min_step: int, proc: subprocess.Popen) -> None:
    step, deadline = 0, time.monotonic() + 120
    while step < min_step and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
        except (OSError, RuntimeError, EOFError, KeyError):
            continue  # not written yet, or being replaced
    assert step >= min_step, f"no last.ckpt past step {min_step} (sweep exit {proc.poll()})"


def the_job_id(cluster) -> str:
    running = [job for job in cluster.jobs() if job["state"] == "RUNNING"]
    assert len(running) == 1, cluster.jobs()
    return running[0]["id"]


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    return out, err


def test_a_sweep_with_the_default_request_runs_on_a_cpu_partition(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [*SLURM, *QUICK, "trainer.max_epochs=1", "optimizer=sgd,torch_adam"]
        + [f"hydra.sweep.dir={sweep}"]
    )
    for job in ("0", "1"):
        assert read_metrics(sweep / job)["status"] == "completed"
    assert "sweep finished: 2 of 2 jobs completed" in proc.stderr
    # one array job of two SLURM jobs, asking for no GPU (the trainer's accelerator is the CPU)
    (script,) = (sweep / ".submitit").glob("*/*_submission.sh")
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and "#SBATCH --partition=debug" in text
    assert "gpus" not in text and "#SBATCH --ntasks-per-node=1" in text


def test_sbatch_refusals_are_one_line(slurm_cluster, tmp_path):
    no_partition = run_cli(
        [*SLURM, "hydra.launcher.partition=nope", f"hydra.sweep.dir={tmp_path / 'a'}"],
        check=False,
    )
    line = one_error_line(no_partition)
    assert "sbatch refused the jobs (partition nope)" in line and "nope" in line
    # trainer=gpu asks for trainer.devices GPUs per node: this partition has none
    gpus = run_cli([*SLURM, "trainer=gpu", f"hydra.sweep.dir={tmp_path / 'b'}"], check=False)
    assert "Invalid generic resource (gres) specification" in one_error_line(gpus)
    # accepted by sbatch, but no node has 64 CPUs: it would pend for ever while the sweep
    # waits without a word (trainer=ddp_cpu's 2 tasks x 2 CPUs on this 2-CPU node alike)
    never = run_cli(
        [*SLURM, "hydra.launcher.cpus_per_task=64", f"hydra.sweep.dir={tmp_path / 'c'}"],
        check=False,
    )
    line = one_error_line(never)
    assert "can never start (PartitionConfig)" in line and "partition debug" in line
    assert all(job["state"] != "PENDING" for job in slurm_cluster.jobs())  # cancelled


@pytest.mark.slow
def test_a_job_requeued_mid_run_resumes_to_the_uninterrupted_result(slurm_cluster, tmp_path):
    args = [*LONG, "trainer.max_epochs=150"]
    straight = tmp_path / "straight"
    run_cli([*args, f"hydra.run.dir={straight}"])

    sweep = tmp_path / "sweep"
    proc = start_sweep(args, sweep)
    wait_for_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt", min_step=19 * 20, proc=proc)
    job_id = the_job_id(slurm_cluster)
    slurm_cluster.run("scontrol", "requeue", job_id)
    _, err = finish(proc)

    assert slurm_cluster.job(job_id)["Restarts"] == "1"
    assert "1 of 1 jobs completed (1 resumed)" in err
    resumed, uninterrupted = read_metrics(sweep / "0"), read_metrics(straight)
    assert resumed["status"] == "completed"
    for key in COMPARED:
        assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-6), key
    # the requeued job went on from its last.ckpt: no epoch trained from the start again
    epochs = trained_epochs(sweep / "0")
    assert epochs == sorted(set(epochs)) and epochs[0] == 0 and len(epochs) == 150
    job_log = next((sweep / ".submitit").glob(f"{job_id}*/*_0_log.err")).read_text()
    assert "resumable" in job_log or "stopped by" in job_log, job_log[-2000:]


@pytest.mark.slow
def test_a_job_at_its_time_limit_is_requeued_by_submitit_and_finishes(slurm_cluster, tmp_path):
    # a 1-minute limit, signalled 55 s before it (slurmctld looks every 30 s: the signal comes
    # 5 to 35 s into the job, which trains for ~40 s): submitit catches the signal, requeues
    # the job, and the requeued run resumes from its last.ckpt until it is done. How many
    # windows that takes depends on the machine's load (a signal that comes while torch is
    # still importing leaves a window with no progress), so the test allows many requeues:
    # what it checks is that each one resumes, not how many there were.
    sweep = tmp_path / "sweep"
    proc = start_sweep(
        [*LONG, "trainer.max_epochs=900", "hydra.launcher.timeout_min=1"]
        + ["hydra.launcher.signal_delay_s=55", "hydra.launcher.max_num_timeout=30"],
        sweep,
    )
    while not (sweep / "0" / "checkpoints" / "last.ckpt").exists() and proc.poll() is None:
        time.sleep(0.2)
    job_id = the_job_id(slurm_cluster)
    _, err = finish(proc, timeout=900)

    assert int(slurm_cluster.job(job_id)["Restarts"]) >= 1
    metrics = read_metrics(sweep / "0")
    assert metrics["status"] == "completed" and metrics["epochs"] == 900
    epochs = trained_epochs(sweep / "0")
    assert epochs[0] == 0 and epochs[-1] == 899 and epochs == sorted(set(epochs))
    job_log = next((sweep / ".submitit").glob(f"{job_id}*/*_0_log.err")).read_text()
    assert "USR2" in job_log or "timed-out" in job_log.lower() or "requeu" in job_log.lower()
    assert "jobs completed (1 resumed)" in err


@pytest.mark.slow
def test_ddp_under_srun_leaves_one_run_dir(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        [*SLURM, *QUICK, "trainer=ddp_cpu", "trainer.max_epochs=1"]
        + ["hydra.launcher.cpus_per_task=1", f"hydra.sweep.dir={sweep}"]
    )
    (script,) = (sweep / ".submitit").glob("*/*_submission.sh")
    assert "#SBATCH --ntasks-per-node=2" in script.read_text()  # one task per DDP process
    jobs = [p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert jobs == ["0"]
    run_dir = sweep / "0"
    assert read_metrics(run_dir)["status"] == "completed"
    assert len(list(sweep.rglob("metrics.json"))) == 1
    # two processes, one per SLURM task: rank 1 logs to its own file and writes nothing else
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_rank1.log"]
    assert "Starting with 2 processes" in (run_dir / "train.log").read_text()


@pytest.mark.slow
def test_a_cancelled_job_ends_the_sweep_in_one_line_and_the_same_command_finishes_it(
    slurm_cluster, tmp_path
):
    # found by using it: with accounting off (this cluster, and many small ones) submitit
    # cannot learn that a job was cancelled, and the sweep waited for ever without a word
    sweep = tmp_path / "sweep"
    args = [*LONG, "trainer.max_epochs=300"]
    proc = start_sweep(args, sweep)
    wait_for_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt", min_step=1, proc=proc)
    slurm_cluster.run("scancel", the_job_id(slurm_cluster))
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the sweep still waits two minutes after its job was cancelled")
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("descentlab: error: ") and "ended CANCELLED without a result" in line
    assert "run the same command again to finish the sweep" in line, line
    assert read_metrics(sweep / "0")["status"] == "interrupted"

    _, err = finish(start_sweep(args, sweep))
    assert "1 of 1 jobs completed (1 resumed)" in err
    metrics = read_metrics(sweep / "0")
    assert metrics["status"] == "completed" and metrics["epochs"] == 300
    epochs = trained_epochs(sweep / "0")
    assert epochs == sorted(set(epochs)) and epochs[0] == 0 and epochs[-1] == 299
