"""Bad input, divergence, kill-and-resume, checkpoint safety, determinism — through the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from descentlab.errors import CheckpointError
from descentlab.storage.checkpoints import SafeCheckpointIO
from descentlab.torchfile import load_checkpoint
from helpers.cli import ROOT, read_metrics, run_cli, without_timings

BAD_INPUT = [
    # (overrides, words the one-line message must contain)
    (["optimizer=nope"], ["optimizer/nope", "torch_sgd"]),
    (["trainer.max_epoch=3"], ["trainer.max_epoch"]),
    (["optimizer.lr=0"], ["optimizer.lr=0", "positive"]),
    (["optimizer=momentum", "optimizer.mu=1.0"], ["optimizer.mu=1.0", "[0, 1)"]),
    (["optimizer=torch_adam", "optimizer.betas=[0.9,1.5]"], ["optimizer.betas", "[0, 1)"]),
    (["model.net.dropout=1.0"], ["model.net.dropout=1.0", "[0, 1)"]),
    (["data.batch_size=0"], ["data.batch_size=0", "positive integer or 'full'"]),
    (["data.batch_size=half"], ["data.batch_size='half'"]),
    (["trainer.max_epochs=0"], ["trainer.max_epochs=0", "positive integer"]),
    (["data.classes=[]"], ["data.classes=[]", "at least 2"]),
    (["data.classes=[3,12]"], ["data.classes=[3, 12]", "0..9"]),
    (["data.train_fraction=1.5"], ["data.train_fraction=1.5", "(0, 1]"]),
    (["model.net.hidden_dims=[64,0]"], ["model.net.hidden_dims=[64, 0]", "positive"]),
    (
        ["model=backbone", "model.net.name=resnet1000"],
        ["model.net.name='resnet1000'", "torchvision"],
    ),
    (
        ["model=backbone", "model.net.checkpoint=/no/such/model.pt"],
        ["model.net.checkpoint", "existing file"],
    ),
    (["ckpt_path=/no/such.ckpt"], ["ckpt_path='/no/such.ckpt'", "existing checkpoint"]),
    (["+experiment=finetune_backbone"], ["pretrained"]),
]


@pytest.mark.parametrize("overrides,words", BAD_INPUT, ids=[" ".join(o) for o, _ in BAD_INPUT])
def test_bad_input_gets_one_clear_line_and_exit_1(tmp_path, overrides, words):
    proc = run_cli([*overrides, f"hydra.run.dir={tmp_path}"], check=False, timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("descentlab: error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert not (tmp_path / "checkpoints").exists()  # stopped before training


def test_full_error_shows_the_traceback(tmp_path):
    proc = run_cli(
        ["optimizer.lr=0", f"hydra.run.dir={tmp_path}"], check=False, env={"HYDRA_FULL_ERROR": "1"}
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr


# ----------------------------------------------------------------------- divergence
def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    # Two good epochs, then the scheduler multiplies the learning rate by 1e12.
    boom = [
        "model.scheduler={_target_:torch.optim.lr_scheduler.MultiStepLR,_partial_:true,milestones:[2],gamma:1e12}",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "trainer.max_epochs=10",
        "callbacks.progress_bar=null",
    ]
    proc = run_cli([*boom, f"hydra.run.dir={tmp_path}"], check=False)
    assert proc.returncode == 1
    error = [line for line in proc.stderr.splitlines() if line.startswith("descentlab: error:")][0]
    step = int(re.search(r"at step (\d+)", error).group(1))
    assert 38 <= step < 57 and re.search(r"became (nan|inf|-inf)", error), (
        error
    )  # in epoch 2, when lr exploded
    named = re.search(r"the last good checkpoint is (\S+)", error).group(1)
    assert Path(named).is_file() and "optimizer.lr" in error  # a file that exists
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1 and last["global_step"] == 38
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


def test_divergence_before_any_checkpoint_says_none_was_written(tmp_path):
    proc = run_cli(
        [
            "optimizer=sgd",
            "optimizer.lr=1e12",
            "callbacks.progress_bar=null",
            f"hydra.run.dir={tmp_path}",
        ],
        check=False,
    )
    error = [line for line in proc.stderr.splitlines() if line.startswith("descentlab: error:")][0]
    assert proc.returncode == 1 and "no checkpoint was written before it" in error
    assert not list(tmp_path.glob("checkpoints/*.ckpt"))
    assert read_metrics(tmp_path)["status"] == "diverged"


def test_safe_checkpoint_io_refuses_non_finite_weights(tmp_path):
    io = SafeCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, tmp_path / "a.ckpt")
    io.save_checkpoint(
        {"state_dict": {"w": torch.tensor([1.0, float("nan"), 0.0])}}, tmp_path / "a.ckpt"
    )
    assert torch.equal(load_checkpoint(tmp_path / "a.ckpt")["state_dict"]["w"], torch.ones(3))


SAVE_BIG = """
import sys, torch
from descentlab.storage.checkpoints import SafeCheckpointIO
SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(100_000_000)}}, sys.argv[1])
"""


def test_a_kill_during_a_save_never_leaves_a_truncated_checkpoint(tmp_path):
    target = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(4)}, "epoch": 3}, target)
    proc = subprocess.Popen([sys.executable, "-c", SAVE_BIG, str(target)], cwd=ROOT)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".last.ckpt.tmp-*")) and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # part of the 400 MB is on disk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(target)["epoch"] == 3  # the previous file, complete


# ------------------------------------------------------------------- checkpoint safety
class Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_checkpoint_whose_pickle_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Exploit(marker)}, evil)
    proc = run_cli([f"ckpt_path={evil}", f"hydra.run.dir={tmp_path / 'run'}"], check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "could run arbitrary code" in proc.stderr
    assert not marker.exists()


def test_truncated_and_corrupt_checkpoints_get_a_clear_error(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:2000])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint")
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(path)
    proc = run_cli([f"ckpt_path={truncated}", f"hydra.run.dir={tmp_path / 'run'}"], check=False)
    assert (
        proc.returncode == 1
        and "corrupt or truncated" in proc.stderr
        and "Traceback" not in proc.stderr
    )


# ----------------------------------------------------------------- kill and resume
RESUMABLE = [
    "trainer.deterministic=true",
    "trainer.max_epochs=6",
    "model.net.hidden_dims=[1024,1024]",
    "callbacks.last_checkpoint.every_n_epochs=null",
    "callbacks.last_checkpoint.every_n_train_steps=5",
    "callbacks.early_stopping.patience=2",
    "callbacks.progress_bar=null",
    "logger=none",
]
COMPARED = [
    "val/loss",
    "val/acc",
    "test/loss",
    "test/acc",
    "train/loss",
    "train/acc",
    "best_epoch",
    "epochs",
    "global_step",
]


def final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_result(tmp_path):
    straight = tmp_path / "straight"
    run_cli([*RESUMABLE, f"hydra.run.dir={straight}"])

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *RESUMABLE, f"hydra.run.dir={killed}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = killed / "checkpoints" / "last.ckpt"
    step, deadline = 0, time.time() + 300
    while step < 40 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if last.exists():
            step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] % 19 != 0  # a mid-epoch checkpoint (19 steps per epoch)
    assert not (killed / "metrics.json").exists()

    run_cli([*RESUMABLE, "ckpt_path=last", f"hydra.run.dir={killed}"])
    resumed, uninterrupted = read_metrics(killed), read_metrics(straight)
    for key in COMPARED:
        assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-6), key
    a, b = final_state(killed), final_state(straight)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


# ------------------------------------------------------------------------ determinism
@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(tmp_path):
    args = ["trainer.max_epochs=8", "callbacks.progress_bar=null", "logger=none"]
    runs = []
    for name in ("first", "second"):
        run_cli([*args, f"hydra.run.dir={tmp_path / name}"])
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        runs.append({k: v for k, v in without_timings(metrics).items() if not k.endswith("_path")})
    assert runs[0] == runs[1]
