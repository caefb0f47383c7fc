"""Runs you can trust: resume keeps the history, resumes the run you mean, refuses what it
cannot honour; SIGTERM stops resumably; one writer per run dir. Through the real CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from descentlab.torchfile import CONFIG_KEY
from helpers.cli import ROOT, one_error_line, read_metrics, run_cli, without_timings

QUICK = ["callbacks.progress_bar=null", "trainer.deterministic=true"]
IGNORED = ("ckpt_path", "model_path")  # paths differ between run dirs


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def per_epoch(run_dir: Path, key: str) -> dict[int, float]:
    return {int(r["epoch"]): float(r[key]) for r in csv_rows(run_dir) if r.get(key)}


def assert_same_results(resumed: dict, straight: dict) -> None:
    assert resumed.keys() == straight.keys()  # as complete as an uninterrupted run
    for key, value in without_timings(straight).items():
        if key not in IGNORED:
            assert resumed[key] == pytest.approx(value, abs=1e-6), key


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Five epochs without interruption: what every resumed run must reproduce."""
    run_dir = tmp_path_factory.mktemp("straight")
    run_cli([*QUICK, "trainer.max_epochs=5", f"hydra.run.dir={run_dir}"])
    return run_dir


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """Three epochs with every logger, then resumed to five with ckpt_path=last."""
    run_dir = tmp_path_factory.mktemp("extended")
    common = [*QUICK, "logger=many", f"hydra.run.dir={run_dir}"]
    run_cli([*common, "trainer.max_epochs=3"])
    first_id = (run_dir / "descentlab-wandb-id").read_text()
    run_cli([*common, "trainer.max_epochs=5", "ckpt_path=last"])
    return run_dir, first_id


@pytest.mark.slow
def test_resume_keeps_the_csv_history_and_matches_an_uninterrupted_run(straight, extended):
    run_dir, _ = extended
    assert per_epoch(run_dir, "val/loss") == pytest.approx(
        per_epoch(straight, "val/loss"), abs=1e-6
    )
    assert sorted(per_epoch(run_dir, "train/loss")) == [0, 1, 2, 3, 4]
    # one row per epoch and stage: nothing duplicated by the resume
    assert len(csv_rows(run_dir)) == len(csv_rows(straight))
    assert_same_results(read_metrics(run_dir), read_metrics(straight))


@pytest.mark.slow
def test_resume_continues_the_same_wandb_run(extended):
    run_dir, first_id = extended
    assert (run_dir / "descentlab-wandb-id").read_text() == first_id
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(p.name.endswith(first_id.strip()) for p in runs), runs


@pytest.mark.slow
def test_resume_hides_the_tensorboard_events_it_trains_again(extended):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = extended
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("val/loss")] == [18, 37, 56, 75, 94]
    # the first run's test at step 57 is purged (purge_step): one test, the resumed run's
    assert [e.step for e in events.Scalars("test/loss")] == [95]


@pytest.mark.slow
def test_resuming_a_finished_run_says_so_and_changes_nothing(extended):
    run_dir, _ = extended
    before = {
        p: p.read_bytes() for p in (run_dir / "metrics.json", run_dir / "csv" / "metrics.csv")
    }
    proc = run_cli(
        [
            *QUICK,
            "logger=many",
            "trainer.max_epochs=5",
            "ckpt_path=last",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert "nothing to resume" in proc.stderr and "already finished" in proc.stderr
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.slow
def test_a_step_checkpoint_at_an_epochs_last_batch_resumes(tmp_path, straight):
    # 19 steps per epoch: every save would fall on an epoch's last batch
    steps = [
        "callbacks.last_checkpoint.every_n_epochs=null",
        "callbacks.last_checkpoint.every_n_train_steps=19",
    ]
    run_cli([*QUICK, *steps, "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}"])
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 57
    run_cli([*QUICK, *steps, "trainer.max_epochs=5", "ckpt_path=last", f"hydra.run.dir={tmp_path}"])
    assert_same_results(read_metrics(tmp_path), read_metrics(straight))


# ------------------------------------------------------------ resume the run you mean
@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    run_dir = logs / "runs" / "first"
    run_cli([*QUICK, "trainer.max_epochs=2", f"paths.log_dir={logs}", f"hydra.run.dir={run_dir}"])
    return logs, run_dir


def test_ckpt_path_last_looks_only_in_this_run_dir(short_run):
    logs, first = short_run
    before = set((logs / "runs").iterdir())
    error = one_error_line(
        run_cli([*QUICK, "ckpt_path=last", f"paths.log_dir={logs}"], check=False)
    )
    assert "has no checkpoints/last.ckpt" in error and f"hydra.run.dir={first}" in error
    assert set((logs / "runs").iterdir()) == before  # the new, empty run dir was removed


@pytest.mark.parametrize(
    "override,words",
    [
        ("optimizer.lr=0.5", ["optimizer.lr: 0.001 -> 0.5", "drop these overrides", "new run"]),
        ("optimizer=sgd", ["optimizer._target_"]),
        ("init=xavier_normal", ["init.name: 'default' -> 'xavier_normal'"]),
        ("model.net.hidden_dims=[32]", ["model.net.hidden_dims"]),
    ],
)
def test_resume_refuses_what_it_would_silently_ignore(short_run, override, words):
    logs, first = short_run
    before = (first / "checkpoints" / "last.ckpt").read_bytes()
    proc = run_cli(
        [
            *QUICK,
            "trainer.max_epochs=4",
            override,
            "ckpt_path=last",
            f"paths.log_dir={logs}",
            f"hydra.run.dir={first}",
        ],
        check=False,
    )
    error = one_error_line(proc)
    for word in words:
        assert word in error, error
    assert (first / "checkpoints" / "last.ckpt").read_bytes() == before
    assert (
        override not in (first / ".hydra" / "overrides.yaml").read_text()
    )  # refused before Hydra wrote


def test_a_resume_without_the_runs_own_overrides_names_them(tmp_path):
    # found by a hostile pass: "drop these overrides" to a user who had given none; what was
    # missing was the run's own optimizer=sgd
    run = [*QUICK, f"hydra.run.dir={tmp_path}"]
    run_cli([*run, "optimizer=sgd", "trainer.max_epochs=1"])
    error = one_error_line(run_cli([*run, "trainer.max_epochs=2", "ckpt_path=last"], check=False))
    assert "the run was made with optimizer=sgd: give that again" in error, error
    assert "drop these overrides" not in error


def test_a_checkpoint_of_another_shape_is_one_line(short_run, tmp_path):
    _, first = short_run
    # a checkpoint from before configs were recorded in it: the shapes are still checked
    old = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    del old[CONFIG_KEY]
    torch.save(old, tmp_path / "old.ckpt")
    proc = run_cli(
        [
            *QUICK,
            "model.net.hidden_dims=[32]",
            f"ckpt_path={tmp_path / 'old.ckpt'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    error = one_error_line(proc)
    assert "does not fit this model" in error and "size mismatch" not in error


def test_a_checkpoint_with_nan_weights_is_blamed(short_run, tmp_path):
    _, first = short_run
    ckpt = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    key = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][key][0] = float("nan")
    torch.save(ckpt, tmp_path / "nan.ckpt")
    proc = run_cli(
        [
            *QUICK,
            "trainer.max_epochs=4",
            f"ckpt_path={tmp_path / 'nan.ckpt'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    error = one_error_line(proc)
    assert "non-finite weights" in error and key in error and "optimizer.lr" not in error


def test_max_epochs_below_the_checkpoints_epochs_is_one_line(short_run, tmp_path):
    _, first = short_run
    proc = run_cli(
        [
            *QUICK,
            "trainer.max_epochs=1",
            f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    assert "trainer.max_epochs=1" in one_error_line(proc) and "at least 2" in proc.stderr


def test_another_runs_checkpoint_into_a_run_dir_with_results_is_refused(short_run, tmp_path):
    _, first = short_run
    other = tmp_path / "other"
    run_cli([*QUICK, "trainer.max_epochs=1", f"hydra.run.dir={other}"])
    before = (first / "metrics.json").read_bytes()
    proc = run_cli(
        [
            *QUICK,
            "trainer.max_epochs=3",
            f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={first}",
        ],
        check=False,
    )
    assert "already holds a run" in one_error_line(proc)
    assert (first / "metrics.json").read_bytes() == before


def test_a_multirun_into_a_used_sweep_dir_is_refused_unless_it_is_the_same_command(tmp_path):
    sweep = ["-m", *QUICK, "trainer.max_epochs=1", "seed=1,2", f"hydra.sweep.dir={tmp_path}"]
    run_cli(sweep)
    before = (tmp_path / "0" / "metrics.json").read_bytes()
    proc = run_cli(
        ["-m", *QUICK, "trainer.max_epochs=1", "seed=7", f"hydra.sweep.dir={tmp_path}"], check=False
    )
    assert "already holds a multirun of another command" in one_error_line(proc)
    assert (tmp_path / "0" / "metrics.json").read_bytes() == before
    # the same command again: every job finished, so nothing is trained or written again
    proc = run_cli(sweep)
    assert proc.stderr.count("finished before (completed): skipped") == 2, proc.stderr[-2000:]
    assert "2 of 2 jobs completed (2 skipped)" in proc.stderr
    assert (tmp_path / "0" / "metrics.json").read_bytes() == before


def test_a_requeued_job_that_had_finished_is_not_counted_as_skipped(tmp_path):
    # found in CI: SLURM's time-limit signal came as a job finished; submitit requeued it, the
    # requeued run found it done and the sweep summary said "(1 skipped)" for a job it ran
    sweep = ["-m", *QUICK, "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path}"]
    run_cli(sweep)
    requeued = run_cli(sweep, env={"SLURM_RESTART_COUNT": "1"})
    assert "sweep finished: 1 of 1 jobs completed;" in requeued.stderr, requeued.stderr[-1000:]
    again = run_cli(sweep)  # the same command run again by the user: that job is skipped
    assert "sweep finished: 1 of 1 jobs completed (1 skipped)" in again.stderr


@pytest.mark.slow
def test_a_killed_sweep_is_finished_by_running_its_command_again(tmp_path):
    """kill -9 of a multirun during its second job: the same command again skips the first
    job, resumes the second from its last.ckpt, and the sweep ends complete."""
    sweep = ["-m", *SLOW_ENOUGH, "seed=1,2", f"hydra.sweep.dir={tmp_path}"]
    proc = start(sweep)
    wait_for(lambda: global_step(tmp_path / "1") >= 19, proc)  # job 1 is past its first epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert (tmp_path / "0" / "metrics.json").is_file()
    assert not (tmp_path / "1" / "metrics.json").exists()
    first = (tmp_path / "0" / "metrics.json").read_bytes()
    proc = run_cli(sweep)
    assert "job 0 finished before (completed): skipped" in proc.stderr
    assert "job 1 interrupted before: resuming from its checkpoints/last.ckpt" in proc.stderr
    assert "2 of 2 jobs completed (1 resumed, 1 skipped)" in proc.stderr, proc.stderr[-2000:]
    assert (tmp_path / "0" / "metrics.json").read_bytes() == first
    resumed = read_metrics(tmp_path / "1")
    assert resumed["status"] in ("completed", "early_stopped")
    history = json.loads((tmp_path / "1" / "history.json").read_text())["epochs"]
    assert sorted(map(int, history)) == list(range(resumed["epochs"]))  # no epoch lost


def test_a_run_dir_whose_run_failed_before_any_checkpoint_can_be_reused(tmp_path):
    proc = run_cli(
        [*QUICK, "optimizer=sgd", "optimizer.lr=1e12", f"hydra.run.dir={tmp_path}"], check=False
    )
    assert proc.returncode == 1 and read_metrics(tmp_path)["status"] == "diverged"
    run_cli([*QUICK, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}"])
    assert read_metrics(tmp_path)["status"] == "completed"


def test_a_fresh_run_into_a_finished_run_dir_is_refused(short_run):
    _, first = short_run
    before = (first / "metrics.json").read_bytes()
    error = one_error_line(run_cli([*QUICK, f"hydra.run.dir={first}"], check=False))
    assert "already holds a run" in error and "ckpt_path=last" in error
    assert (first / "metrics.json").read_bytes() == before


# ------------------------------------------------------------------------- signals
SLOW_ENOUGH = [
    *QUICK,
    "trainer.max_epochs=6",
    "model.net.hidden_dims=[1024,1024]",
    "callbacks.early_stopping.patience=2",
    "logger=csv",
]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, "the run finished before the test could act"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def global_step(run_dir: Path) -> int:
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        return torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    except Exception:  # noqa: BLE001 - not written yet
        return 0


@pytest.mark.slow
def test_sigterm_stops_resumably_and_the_resume_gives_the_uninterrupted_result(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run_cli([*SLOW_ENOUGH, f"hydra.run.dir={straight}"])
    proc = start([*SLOW_ENOUGH, f"hydra.run.dir={stopped}"])
    # last.ckpt of epoch 0 is written: the signal lands early in epoch 1 (an epoch takes
    # well under a second uncontended, so waiting longer could reach the end of training)
    wait_for(lambda: global_step(stopped) >= 19, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    metrics = read_metrics(stopped)
    assert metrics["status"] == "interrupted" and "SIGTERM" in metrics["reason"]
    assert (
        torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        == (metrics["global_step"])
    )  # the checkpoint is where it stopped
    proc = run_cli(
        [*SLOW_ENOUGH, "ckpt_path=last", f"hydra.run.dir={stopped}"],
        env={"PYTHONWARNINGS": "default"},
    )
    assert "exists and is not empty" not in proc.stderr  # the resume's own checkpoints/
    resumed = read_metrics(stopped)
    assert resumed["status"] in ("completed", "early_stopped")
    assert_same_results(resumed, read_metrics(straight))
    # every epoch's logged train/* too, the interrupted epoch included (its running sums
    # travel in the checkpoint)
    for key in ("train/loss", "train/acc", "val/loss"):
        assert per_epoch(stopped, key) == pytest.approx(per_epoch(straight, key), abs=1e-6), key


@pytest.mark.slow
def test_sigterm_during_the_test_finishes_the_run_and_exits_143(tmp_path):
    args = [
        *QUICK,
        "trainer.max_epochs=1",
        "model.net.hidden_dims=[4096,4096]",
        "data.eval_batch_size=1",
    ]
    proc = start([*args, f"hydra.run.dir={tmp_path}"])
    wait_for(lambda: (tmp_path / "model.pt").exists(), proc)  # written just before the test
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-2000:]
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "completed" and "test/acc" in metrics


@pytest.mark.slow
@pytest.mark.smoke
def test_ctrl_c_records_an_interrupted_run_and_exits_130(tmp_path):
    proc = start([*SLOW_ENOUGH, f"hydra.run.dir={tmp_path}"])
    wait_for(lambda: global_step(tmp_path) >= 19, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "interrupted" and "SIGINT" in metrics["reason"]
    assert metrics["best_epoch"] is not None and "val/loss" in metrics  # the epochs it finished


@pytest.mark.slow
def test_sigterm_ends_a_sweep_without_starting_the_next_job(tmp_path):
    proc = start(["-m", "optimizer.lr=0.001,0.002", *SLOW_ENOUGH, f"hydra.sweep.dir={tmp_path}"])
    wait_for(lambda: global_step(tmp_path / "0") >= 5, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert read_metrics(tmp_path / "0")["status"] == "interrupted"
    assert not (tmp_path / "1").exists()


# ------------------------------------------------------------- one writer per run dir
@pytest.mark.slow
def test_a_second_run_into_a_run_dir_in_use_is_refused(tmp_path):
    first = start([*SLOW_ENOUGH, "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}"])
    # Hydra writes config.yaml, hydra.yaml, then overrides.yaml: once the last is there
    # (non-empty), config.yaml is whole
    overrides = tmp_path / ".hydra" / "overrides.yaml"
    wait_for(lambda: overrides.exists() and overrides.stat().st_size > 0, first)
    config = (tmp_path / ".hydra" / "config.yaml").read_bytes()
    assert config
    second = run_cli([*QUICK, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}"], check=False)
    error = one_error_line(second)
    assert "in use by pid" in error and str(first.pid) in error
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert read_metrics(tmp_path)["epochs"] == 2  # the first run's results, whole
    assert (tmp_path / ".hydra" / "config.yaml").read_bytes() == config


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    # A process that takes the lock and is killed with SIGKILL: the kernel frees the lock.
    code = "from descentlab.run import run_dir; import sys, time; run_dir.lock(sys.argv[1]); print('locked', flush=True); time.sleep(60)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    refused = run_cli(
        [*QUICK, "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}"], check=False
    )
    assert "in use by pid" in one_error_line(refused)
    holder.kill()
    holder.wait()
    assert (tmp_path / ".lock").exists()  # stale file, free lock
    run_cli([*QUICK, "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}"])
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"


def test_a_resume_with_callbacks_none_keeps_last_ckpt_current(tmp_path):
    """Resumed with callbacks=none, the run trained an epoch that metrics.json and model.pt
    recorded but last.ckpt did not (no callback wrote it): a later ckpt_path=last quietly
    trained that epoch again. The existing last.ckpt is now kept current."""
    run = ["logger=none", "test=false", "trainer.deterministic=true", f"hydra.run.dir={tmp_path}"]
    run_cli([*run, "trainer.max_epochs=2", "callbacks.progress_bar=null"])
    run_cli([*run, "callbacks=none", "trainer.max_epochs=3", "ckpt_path=last"])
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    metrics = read_metrics(tmp_path)
    assert metrics["epochs"] == 3 and last["epoch"] == 2  # 0-based: the third epoch
    assert last["global_step"] == metrics["global_step"]
    fresh = tmp_path / "fresh"
    run_cli(
        ["logger=none", "test=false", "callbacks=none", "trainer.max_epochs=1"]
        + [f"hydra.run.dir={fresh}"]
    )
    assert not (fresh / "checkpoints").exists()  # callbacks=none alone writes no checkpoint


def children_of(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in found.read_text().split()] if found.exists() else []


@pytest.mark.slow
def test_sigterm_to_a_non_zero_ddp_rank_stops_the_job_resumably(tmp_path):
    """SLURM or a user may signal any process of the job: a SIGTERM to rank 1 alone (rank 0
    never sees it) stops both ranks at the same step, with last.ckpt and a recorded stop."""
    args = [*QUICK, "trainer=ddp_cpu", "trainer.max_epochs=30", "data.batch_size=4"]
    proc = start([*args, "logger=none", f"hydra.run.dir={tmp_path}"])
    wait_for(lambda: global_step(tmp_path) > 0, proc)  # both ranks are training
    (rank1,) = [
        c for c in children_of(proc.pid) if "train.py" in Path(f"/proc/{c}/cmdline").read_text()
    ]
    os.kill(rank1, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-2000:]
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "interrupted" and "SIGTERM" in metrics["reason"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == metrics["global_step"]
    assert "resume with ckpt_path=last" in stderr


def test_a_failed_job_is_kept_when_its_sweep_continues_and_rerun_on_request(tmp_path):
    sweep = ["-m", *QUICK, "trainer.max_epochs=1", "model.net.hidden_dims=[8],[0]"]
    sweep += [f"hydra.sweep.dir={tmp_path}"]
    run_cli(sweep)
    assert read_metrics(tmp_path / "1")["status"] == "failed"
    proc = run_cli(sweep)
    assert "job 1 failed before: kept as it is (rerun_failed=true runs it again)" in proc.stderr
    assert "1 of 2 jobs completed (1 kept, 1 skipped)" in proc.stderr, proc.stderr[-2000:]
    proc = run_cli([*sweep, "rerun_failed=true"])
    assert "job 1 failed before: running it again" in proc.stderr
    assert (tmp_path / "1" / "previous_attempt_1" / "metrics.json").is_file()  # nothing lost
    assert read_metrics(tmp_path / "1")["status"] == "failed"  # [0] fails again, recorded


def test_a_sigterm_while_lightning_sets_the_test_up_still_lets_the_test_finish(tmp_path):
    """A SIGTERM after Lightning installed its handler for trainer.test but before our
    on_test_start took over set Lightning's flag, on which its test loop stops at the next
    batch (a CI run met it: status interrupted, no test metrics). on_test_start takes the
    signal over: the test finishes, and the run then exits 143 as for any SIGTERM in the test."""
    from lightning.pytorch import Trainer

    from descentlab.run.interrupt import GracefulStop, StopRequest

    request = StopRequest()
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer._signal_connector.received_sigterm = True  # Lightning's handler saw the signal
    previous = signal.getsignal(signal.SIGTERM)
    try:
        GracefulStop(request, tmp_path / "last.ckpt").on_test_start(trainer, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not trainer.received_sigterm  # the test loop goes on
    assert request.signum == signal.SIGTERM  # and the run still ends as stopped (143)
