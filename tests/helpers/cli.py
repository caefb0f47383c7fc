"""Run the real CLI (``python train.py ...``) as a subprocess, and read what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    args: list[str],
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict | None = None,
    check: bool = True,
    module: str | None = None,
    script: Path | None = None,
    script_name: str = "train.py",
    python_code: str | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` (or ``eval.py`` by ``script_name``, ``python SCRIPT ARGS``,
    ``python -m MODULE ARGS``, ``python -c CODE ARGS``) as a real subprocess."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", "WANDB_MODE": "offline", **(env or {})}
    if python_code is not None:
        script = ["-c", python_code]
    else:
        script = ["-m", module] if module else [str(script or ROOT / script_name)]
    proc = subprocess.run(
        [sys.executable, *script, *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
        )
    return proc


def one_error_line(proc) -> str:
    """The one ``descentlab: error:`` line of a run that failed cleanly (exit 1, no traceback)."""
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("descentlab: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def dead_pid() -> int:
    """The PID of a process that has exited (for files a killed process left behind)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


# Throughput figures (callbacks/throughput.py): timings, different in every run of the same
# config; the rest of metrics.json and history.json is reproducible to the bit.
TIMINGS = ("perf/samples_per_s", "perf/flops_per_s")


def without_timings(metrics: dict) -> dict:
    """``metrics`` less its throughput timings (``perf/flops_per_sample`` is a count: kept)."""
    return {k: v for k, v in metrics.items() if k.removeprefix("last/") not in TIMINGS}
