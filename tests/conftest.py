"""Shared fixtures: compose the real configs, run training in-process or as `python train.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from descentlab.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
# Quiet, quick defaults for in-process runs; tests add their own overrides after these.
QUIET = [
    "++callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]

HAS_GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")


def compose_config(overrides: list[str], tmp_path: Path, quiet: bool = True) -> DictConfig:
    """Compose ``configs/train.yaml`` as ``python train.py OVERRIDES`` would, output in tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=(QUIET if quiet else []) + list(overrides), return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.data_dir = str(tmp_path / "data")
        del cfg["hydra"]  # as in a real run: the task function's config has no hydra node
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, quiet: bool = True, subdir: str | None = None) -> DictConfig:
        return compose_config(
            list(overrides), tmp_path / subdir if subdir else tmp_path, quiet=quiet
        )

    return make


def run_cli(
    args: list[str],
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict | None = None,
    check: bool = True,
    module: str | None = None,
    script: Path | None = None,
    script_name: str = "train.py",
) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` (or ``eval.py`` by ``script_name``, ``python SCRIPT ARGS``,
    ``python -m MODULE ARGS``) as a real subprocess."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", "WANDB_MODE": "offline", **(env or {})}
    script = ["-m", module] if module else [str(script or ROOT / script_name)]
    proc = subprocess.run(
        [sys.executable, *script, *args], cwd=cwd or ROOT, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
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


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch, tmp_path):
    # W&B never reaches the network in tests, and writes under the test's tmp dir.
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
