"""``run(cfg)``: the run as named phases: build, fit, keep the best, test, record.

Data flows one way: config → instantiate → ``Trainer.fit`` → logs/checkpoints →
``metrics.json``. Everything that varies between experiments lives in the configs;
nothing here is model-specific.

``metrics.json`` describes the model the run keeps: ``train/*`` and ``val/*`` of the best
epoch (the one whose weights are restored, saved and tested), ``test/*`` of those
weights, the last epoch's values under ``last/``, and ``status``: ``completed``,
``early_stopped``, ``max_steps``, ``max_time``, ``diverged``, ``interrupted`` or ``failed``
(then with ``reason``).
"""

from __future__ import annotations

import warnings
from typing import Any

from omegaconf import DictConfig

import descentlab.config  # noqa: F401  (registers the config resolvers)

# torch, lightning and the data libraries are imported inside run(): a config mistake is
# reported before paying their import time.


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the configured model; return (and write) the final metrics."""
    from descentlab.config.validate import validate

    validate(cfg)
    import lightning as L

    from descentlab.callbacks.throughput import summary_of
    from descentlab.errors import RunInterrupted
    from descentlab.run import card, kept, outcome, outputs
    from descentlab.run.build import build
    from descentlab.run.console import tidy_console
    from descentlab.run.runtime import configure_torch

    tidy_console()
    if single_process(cfg):
        # Lightning's "`srun` is available ... but is not used" on a SLURM login node: advice
        # for multi-process runs, which need srun; a one-process run needs nothing
        warnings.filterwarnings("ignore", r".*`srun` command is available on your system.*")
    # Metrics are logged per epoch only, so Lightning's per-step logging interval is moot.
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    configure_torch(cfg)

    parts = build(cfg)
    trainer, model, stop = parts.trainer, parts.model, parts.stop_request
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))

    def record(status: str, **extra: Any) -> dict[str, Any]:
        per_epoch = kept.epoch_metrics(trainer, parts.history)
        return {
            # throughput: the run's median over epochs, not the kept epoch's own value
            **{k: v for k, v in per_epoch.items() if "perf/" not in k},
            **summary_of(trainer),
            **outputs.task_fields(model),
            **extra,
            "status": status,
        }

    with outcome.stop_signals(stop):
        with outcome.recorded(parts, lambda reason: record("interrupted", reason=reason)):
            trainer.fit(
                model, datamodule=parts.datamodule, ckpt_path=parts.ckpt_path, weights_only=True
            )
        # A SIGTERM that came as training ended (see GracefulStop) lets the run finish.
        status = kept.stop_status(trainer)
        metrics = record(status)
        best_path, model_path = kept.keep_best(trainer, model, parts.output_dir, fast_dev_run)
        if cfg.get("test", True):

            def during_test(reason: str) -> dict[str, Any]:  # the trained model is in model.pt
                return {**metrics, "status": "interrupted", "reason": f"{reason}, during the test"}

            with outcome.recorded(parts, during_test, record_failures=False):
                results = trainer.test(model, datamodule=parts.datamodule, verbose=False)
            metrics.update(
                {k: outputs.scalar(v) for k, v in (results[0] if results else {}).items()}
            )
        metrics["ckpt_path"] = best_path or None
        metrics["model_path"] = str(model_path) if model_path else None

        final = {k: outputs.scalar(v) for k, v in metrics.items()}
        outputs.finish_loggers(parts.loggers, summary=final, hparams=parts.hparams)
        if trainer.is_global_zero:
            outputs.write_metrics(parts.output_dir / "metrics.json", metrics)
            outputs.print_table(metrics, parts.output_dir / "metrics.json")
            card.write(cfg, metrics, parts)  # run.json, card.md: the run's facts
    if stop.signum is not None:
        raise RunInterrupted(
            f"SIGTERM came as training ended: the run finished ({status}); exiting as stopped",
            signum=stop.signum,
        )
    return metrics


def single_process(cfg: DictConfig) -> bool:
    """One device on one node: no launcher (srun, torchrun) is needed."""
    trainer = cfg.get("trainer", {})
    return str(trainer.get("devices", 1)) == "1" and str(trainer.get("num_nodes", 1)) == "1"


def main(cfg: DictConfig) -> float | None:
    """Hydra task: run, and report how it ended (see :func:`descentlab.run.exits.run_task`)."""
    from descentlab.run import job
    from descentlab.run.exits import in_multirun, run_task
    from descentlab.run.sweep_jobs import continue_job

    def objective(metrics: dict[str, Any]) -> str | None:
        """``optimized_metric``, else the task's objective (recorded in the metrics)."""
        return cfg.get("optimized_metric") or metrics.get("objective")

    if in_multirun() and job.is_rank_zero():
        # the same command again in its sweep dir finishes the sweep (run/sweep_jobs.py)
        recorded = continue_job(cfg)
        if recorded is not None:
            value = recorded.get(objective(recorded) or "")
            return (
                value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            )
    return run_task(lambda: run(cfg), cfg, metric=objective, card=True)
