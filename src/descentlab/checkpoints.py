"""Finding, loading and safely writing checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from descentlab.errors import CheckpointError


def resolve_ckpt_path(ckpt_path: str | None, cfg: DictConfig) -> str | None:
    """``ckpt_path`` as given, or ``last``: the newest ``last.ckpt`` under the log dir."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        candidates = sorted(
            Path(cfg.paths.log_dir).glob("**/checkpoints/last.ckpt"), key=os.path.getmtime
        )
        own = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        candidates = [c for c in candidates if c.resolve() != own.resolve()] or candidates
        if not candidates:
            raise CheckpointError(f"ckpt_path=last: no last.ckpt found under {cfg.paths.log_dir}")
        return str(candidates[-1])
    if not os.path.isfile(ckpt_path):
        raise CheckpointError(f"ckpt_path={ckpt_path!r} does not exist")
    return str(ckpt_path)
