"""Which way each metric a task logs is better: read torch-free by the report and the config check."""

from __future__ import annotations

# metric name (after the ``train/``, ``val/``, ``test/`` prefix) -> "min" or "max"
METRIC_MODES: dict[str, str] = {
    "loss": "min",
    "acc": "max",
    "mse": "min",
    "mae": "min",
    "r2": "max",
    "auroc": "max",
}


def mode_of(metric: str, default: str = "max") -> str:
    """``min`` or ``max`` for a logged name such as ``val/mse``; ``default`` for an unknown one."""
    return METRIC_MODES.get(metric.rsplit("/", 1)[-1], default)
