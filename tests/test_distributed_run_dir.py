"""One run dir per distributed job, without hydra.run.dir: Lightning's launcher and torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from helpers.cli import ROOT, read_metrics, run_cli

QUICK = ["callbacks.progress_bar=null", "logger=none", "debug=limit", "trainer.max_epochs=1"]


def the_one_run_dir(log_dir):
    runs = sorted((log_dir / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_a_ddp_cpu_run_leaves_one_run_dir(tmp_path):
    run_cli([*QUICK, "trainer=ddp_cpu", f"paths.log_dir={tmp_path}"])
    run_dir = the_one_run_dir(tmp_path)
    assert read_metrics(run_dir)["status"] == "completed"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    # rank 1 (started by Lightning) logs to its own file and writes nothing else
    logs = sorted(p.name for p in run_dir.glob("*.log"))
    assert logs[0] == "train.log" and len(logs) == 2 and logs[1].endswith("_rank1.log"), logs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_leave_one_run_dir(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(ROOT / "train.py"),
                *QUICK,
                "trainer=ddp_cpu",
                "trainer.devices=1",
                "trainer.num_nodes=2",
                f"paths.log_dir={tmp_path}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    run_dir = the_one_run_dir(tmp_path)
    assert read_metrics(run_dir)["status"] == "completed"
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_rank1.log"]
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]


def test_torchrun_with_other_devices_than_processes_is_one_line(tmp_path):
    proc = run_cli(
        [
            "--standalone",
            "--nproc_per_node=2",
            str(ROOT / "train.py"),
            *QUICK,
            "trainer=ddp_cpu",
            "trainer.devices=1",
            f"paths.log_dir={tmp_path}",
        ],
        module="torch.distributed.run",
        check=False,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("descentlab: error:")]
    assert proc.returncode != 0 and errors, proc.stderr[-3000:]
    assert "trainer.devices=1" in errors[0] and "torchrun started" in errors[0]
    # refused before any rank read data or wrote results
    assert not list(tmp_path.glob("runs/*/metrics.json"))
