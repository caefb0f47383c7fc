"""Process-wide torch settings for a run, from the config's top-level keys."""

from __future__ import annotations

import logging
import os
import threading
import time

from omegaconf import DictConfig

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
log = logging.getLogger(__name__)
# set in a joblib worker whose sweep process died: the job stops, then the worker exits
SWEEP_GONE = threading.Event()
_watching = threading.Event()


def configure_torch(cfg: DictConfig) -> None:
    """Apply ``num_threads``, ``flush_denormal`` and ``float32_matmul_precision``; drop a
    useless CUDA probe."""
    import torch

    threads = threads_per_job(cfg.get("num_threads", "auto"), launcher_config())
    if threads is not None:
        torch.set_num_threads(threads)
        log.info("torch threads: %d (num_threads=%s)", threads, cfg.get("num_threads", "auto"))
    if cfg.get("flush_denormal", False):
        torch.set_flush_denormal(True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    skip_nvml_probe_without_cuda()
    if "JoblibLauncher" in str((launcher_config() or {}).get("_target_", "")):
        stop_when_the_sweep_dies()


def stop_when_the_sweep_dies(every_s: float = 1.0) -> None:
    """In a worker of ``hydra/launcher=joblib``: when the sweep's process dies (kill -9, a
    lost terminal), send this job SIGTERM, which stops it resumably at the next step
    boundary (``last.ckpt``, ``status: interrupted``).

    joblib's workers outlive a killed parent: the job would train on for nobody, holding its
    run dir, so that running the sweep's command again finds the dir in use. The parent is
    gone when this process is re-parented (``os.getppid()`` changes); the job, once stopped,
    ends the worker (:data:`SWEEP_GONE`, read by ``exits.run_task``).
    """
    import signal

    if _watching.is_set():  # a worker runs job after job: one watcher for its lifetime
        return
    _watching.set()
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        log.warning("the sweep's process %d is gone: stopping this job", parent)
        SWEEP_GONE.set()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="descentlab-sweep-watch").start()


def launcher_config() -> DictConfig | None:
    """The multirun's ``hydra.launcher`` node, None outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().get("launcher")


def threads_per_job(
    num_threads, launcher: DictConfig | None, cores: int | None = None
) -> int | None:
    """torch's intra-op threads for this job; None leaves torch's default (one per core).

    ``num_threads: auto`` shares the cores between the jobs a launcher runs at once on this
    machine, so that they do not oversubscribe them (n jobs × all cores each spin-wait for
    one another): ``cores // n_jobs`` under ``hydra/launcher=joblib`` (``n_jobs: -1``: one job
    per core), ``cpus_per_task`` under ``submitit_local`` when it is set. Any other launcher
    (one job at a time, or a job on its own SLURM allocation) keeps torch's default. A number
    sets it outright.
    """
    if num_threads is not None and str(num_threads) != "auto":
        return int(num_threads)
    if num_threads is None or launcher is None:
        return None
    cores = cores or os.cpu_count() or 1
    target = str(launcher.get("_target_", ""))
    if "JoblibLauncher" in target:
        n_jobs = int(launcher.get("n_jobs") or -1)
        at_once = cores if n_jobs < 0 else n_jobs
        return max(1, cores // at_once)
    if "LocalLauncher" in target and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


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
