"""Process-wide torch settings for a run, from the config's top-level keys."""

from __future__ import annotations

import os

from omegaconf import DictConfig

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def configure_torch(cfg: DictConfig) -> None:
    """Apply ``flush_denormal`` and ``float32_matmul_precision``; drop a useless CUDA probe."""
    import torch

    if cfg.get("flush_denormal", False):
        torch.set_flush_denormal(True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    skip_nvml_probe_without_cuda()


def skip_nvml_probe_without_cuda() -> None:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` when there is no CUDA device.

    Importing Lightning sets it, so that asking whether CUDA is available never
    initializes CUDA (which would break processes forked later). torch then answers
    ``torch.cuda.is_available()`` by loading NVML (libnvidia-ml) on every call, and
    ``torch.optim.Adam``/``AdamW`` ask on every ``step()`` (their CUDA-graph capture
    check). On a machine without an NVIDIA driver that load fails every time, is not
    cached, and torch falls back to the CUDA runtime's answer anyway: ~0.15 ms per step
    for nothing, about 8 % of a small MLP's step on 2 CPU cores (``make bench``). With no
    CUDA device there is no CUDA state to protect, so the variable only costs time.
    """
    import torch

    if os.environ.get(NVML_CHECK) == "1" and not torch.cuda.is_available():
        del os.environ[NVML_CHECK]
