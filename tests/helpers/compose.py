"""Compose the real configs in-process, as ``python train.py OVERRIDES`` would."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, open_dict

from descentlab.api import compose
from descentlab.config import CONFIG_DIR

# Quiet, quick defaults for in-process runs; tests add their own overrides after these.
QUIET = [
    "++callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_config(overrides: list[str], tmp_path: Path, quiet: bool = True) -> DictConfig:
    """``configs/train.yaml`` with OVERRIDES (after :data:`QUIET`), all output in tmp_path."""
    cfg = compose((QUIET if quiet else []) + list(overrides), tmp_path, config_dir=CONFIG_DIR)
    with open_dict(cfg):
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg
