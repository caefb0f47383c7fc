"""The op-table MLP trains like the native one, verified in-process, under DDP and torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from descentlab.autograd import ops
from descentlab.autograd.layers import native_forward, op_cross_entropy
from descentlab.errors import OpVerificationError
from descentlab.run.train import run
from helpers import requires_gpu
from helpers.cli import ROOT, read_metrics, run_cli


def test_optable_and_native_mlp_share_parameters_and_gradients(make_cfg):
    torch.manual_seed(3)
    native = instantiate(make_cfg("model.net.ops=native", "model.net.activation=tanh").model).net
    torch.manual_seed(3)
    optable = instantiate(make_cfg("model.net.ops=optable", "model.net.activation=tanh").model).net
    for (name_a, a), (name_b, b) in zip(
        native.state_dict().items(), optable.state_dict().items(), strict=True
    ):
        assert name_a == name_b and torch.equal(a, b)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    g_native = torch.autograd.grad(
        torch.nn.functional.cross_entropy(native(x), y), list(native.parameters())
    )
    g_optable = torch.autograd.grad(op_cross_entropy(optable(x), y), list(optable.parameters()))
    for a, b in zip(g_native, g_optable, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(native_forward(optable, x), native(x), atol=1e-6)


@pytest.mark.slow
def test_optable_trains_to_within_one_point_of_native(make_cfg, tmp_path):
    common = ["trainer.max_epochs=15", "callbacks.early_stopping=null", "logger=none"]
    native = run(make_cfg("model.net.ops=native", *common, subdir="native"))
    optable = run(
        make_cfg(
            "model.net.ops=optable", "callbacks=[default,verify_ops]", *common, subdir="optable"
        )
    )
    assert optable["test/acc"] >= 0.95
    assert abs(optable["test/acc"] - native["test/acc"]) <= 0.01
    assert optable["verify/max_rel_err"] < 1e-4


def test_verify_ops_stops_the_run_when_a_derivative_is_wrong(make_cfg, monkeypatch):
    # A wrong right-hand column: σ' taken as σ instead of σ(1 − σ).
    def wrong_backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out

    monkeypatch.setattr(ops.SigmoidOp, "backward", staticmethod(wrong_backward))
    cfg = make_cfg(
        "model.net.ops=optable",
        "model.net.activation=sigmoid",
        "callbacks=[default,verify_ops]",
        "trainer.max_epochs=1",
        "logger=none",
    )
    with pytest.raises(OpVerificationError, match="step 0 on rank 0"):
        run(cfg)


def test_each_verification_reaches_the_logger_once(tmp_path):
    import csv

    run_cli(
        [
            "model.net.ops=optable",
            "callbacks=[default,verify_ops]",
            "callbacks.verify_ops.every_n_steps=5",
            "trainer.log_every_n_steps=5",
            "trainer.max_epochs=1",
            "callbacks.progress_bar=null",
            "test=false",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        steps = [row["step"] for row in csv.DictReader(f) if row.get("verify/max_abs_err")]
    # digits: 19 steps per epoch, checked at steps 0, 5, 10, 15
    assert sorted(steps, key=int) == ["0", "5", "10", "15"]


# ------------------------------------------------------------------ multi-process
DDP_COMMON = [
    "model.net.ops=optable",
    "optimizer=torch_sgd",
    "optimizer.lr=0.2",
    "data.shuffle=false",
    "trainer.max_epochs=2",
    "callbacks=[default,verify_ops]",
    "callbacks.early_stopping=null",
    "callbacks.progress_bar=null",
    "callbacks.verify_ops.every_n_steps=5",
    "test=false",
]


def final_weights(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


def assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.allclose(a[key], b[key], atol=atol, rtol=0), (
            key,
            (a[key] - b[key]).abs().max(),
        )


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("single")
    run_cli([*DDP_COMMON, "data.batch_size=64", f"hydra.run.dir={run_dir}"])
    return run_dir


@pytest.mark.slow
def test_ddp_cpu_matches_one_process_with_the_global_batch(single_process_run, tmp_path):
    proc = run_cli(
        [*DDP_COMMON, "trainer=ddp_cpu", "data.batch_size=32", f"hydra.run.dir={tmp_path}"]
    )
    assert_same_weights(final_weights(tmp_path), final_weights(single_process_run))
    output = proc.stdout + proc.stderr
    assert "verify_ops: rank 0 passed" in output and "verify_ops: rank 1 passed" in output
    # epoch metrics are summed over both ranks' shards: the same numbers as one process
    ddp, single = read_metrics(tmp_path), read_metrics(single_process_run)
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5), key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_on_loopback_matches_one_process(single_process_run, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    procs = []
    for node in (0, 1):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={node}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            str(ROOT / "train.py"),
            *DDP_COMMON,
            "trainer=ddp_cpu",
            "trainer.devices=1",
            "trainer.num_nodes=2",
            "data.batch_size=32",
            f"hydra.run.dir={tmp_path / f'node{node}'}",
        ]
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert_same_weights(final_weights(tmp_path / "node0"), final_weights(single_process_run))
    assert "verify_ops: rank 0 passed" in outputs[0] and "verify_ops: rank 1 passed" in outputs[1]
    assert not (
        tmp_path / "node1" / "checkpoints" / "last.ckpt"
    ).exists()  # only global rank 0 saves
    assert "test/acc" not in read_metrics(tmp_path / "node0")


@requires_gpu
@pytest.mark.gpu
def test_optable_trains_on_gpu(make_cfg):
    metrics = run(
        make_cfg(
            "model.net.ops=optable",
            "trainer=gpu",
            "callbacks=[default,verify_ops]",
            "trainer.max_epochs=10",
            "logger=none",
        )
    )
    assert metrics["test/acc"] >= 0.95 and metrics["verify/max_rel_err"] < 1e-4


@pytest.mark.multigpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2+ CUDA GPUs")
def test_optable_ddp_on_gpus(tmp_path):
    proc = run_cli(
        [
            "model.net.ops=optable",
            "trainer=ddp",
            "trainer.devices=2",
            "callbacks=[default,verify_ops]",
            "callbacks.progress_bar=null",
            "trainer.max_epochs=5",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert "verify_ops: rank 1 passed" in proc.stdout + proc.stderr
    assert read_metrics(tmp_path)["test/acc"] >= 0.9
