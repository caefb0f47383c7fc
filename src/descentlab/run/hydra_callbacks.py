"""Hydra callbacks: guard the run dir before Hydra writes into it; summarize a sweep.

Configured under ``hydra.callbacks`` (configs/hydra/default.yaml). They run in the
launching process, before Hydra writes ``.hydra/`` and ``train.log`` into the run dir,
which is why the one-writer lock is taken here and not in ``train.run``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

import descentlab.config  # noqa: F401  (resolvers: submitit's workers unpickle this module first)
from descentlab.errors import DescentlabError, RunAlreadyFinished, RunDirError
from descentlab.run import FINISHED, job, run_dir


def _fail(err: DescentlabError, created_dir: Path | None = None) -> None:
    print(f"descentlab: error: {err}", file=sys.stderr)
    if created_dir is not None:
        run_dir.remove_if_empty(created_dir)
    sys.exit(1)


def _claim(path: Path, holds: Callable[[Path], bool], refusal: str, cleanup: bool) -> None:
    """Lock ``path`` for this process (rank 0 only); refuse it in one line, exit 1, when
    ``holds(path)`` (``refusal`` names the dir as ``{path}``)."""
    if not job.is_rank_zero():
        return
    try:
        run_dir.lock(path)
        if holds(path):
            raise RunDirError(refusal.format(path=path.resolve()))
    except DescentlabError as err:
        _fail(err, path if cleanup else None)


class RunDirGuard(Callback):
    """Before Hydra writes into the run dir (``.hydra/``, ``train.log``):

    - lock it for this process (one writer per run dir; a sweep locks its sweep dir);
    - refuse a fresh run, or another run's checkpoint, into a run dir holding a run;
    - check a resume's checkpoint against the config (changed keys, a finished run), so
      that a refused resume leaves the run dir's recorded config untouched.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not job.is_rank_zero():
            return
        path = Path(str(config.hydra.run.dir))
        try:
            from descentlab.config.validate import check_ckpt_path_not_empty

            check_ckpt_path_not_empty(config.get("ckpt_path"))  # before the run dir is locked
            run_dir.lock(path)
            from descentlab.run.job import requeued_checkpoint

            # a requeued SLURM job starts its command again: it resumes its own run dir
            ckpt_path = config.get("ckpt_path") or requeued_checkpoint(path)
            own_checkpoints = (path / "checkpoints").resolve()
            if run_dir.holds_a_run(path) and (
                not ckpt_path
                or (
                    ckpt_path != "last"
                    and Path(str(ckpt_path)).resolve().parent
                    not in (own_checkpoints, path.resolve())
                )
            ):
                raise RunDirError(
                    f"run dir {path.resolve()} already holds a run: resume it with ckpt_path=last, "
                    f"or choose another hydra.run.dir (its results would be overwritten)"
                )
            if ckpt_path:
                self._precheck(config, path)
        except RunAlreadyFinished as done:
            print(f"descentlab: {done}", file=sys.stderr)
            sys.exit(0)
        except DescentlabError as err:
            _fail(err, path)

    @staticmethod
    def _precheck(config: DictConfig, path: Path) -> None:
        from omegaconf import open_dict

        from descentlab.config.validate import is_file
        from descentlab.errors import ConfigError
        from descentlab.run.job import requeued_checkpoint

        cfg = config.copy()
        with open_dict(cfg):
            cfg.paths.output_dir = str(path)  # ${hydra:runtime.output_dir} is not set yet
            cfg.ckpt_path = cfg.ckpt_path or requeued_checkpoint(path)
        if cfg.ckpt_path != "last" and not is_file(cfg.ckpt_path):
            # checked before descentlab.run.resume imports torch: this refusal takes ~1 s
            raise ConfigError(
                "ckpt_path", cfg.ckpt_path, "an existing checkpoint file, 'last', or null"
            )
        from descentlab.run import resume

        checkpoint = resume.resolve(str(cfg.ckpt_path), cfg)
        try:
            resume.fixed_config(cfg)
        except Exception:  # noqa: BLE001 - a config that does not resolve: train.run reports it
            return
        resume.precheck(checkpoint, cfg)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from descentlab.config.extras import require_extra
        from descentlab.config.validate import check_launcher, check_sweeper

        try:  # Hydra builds the launcher after this callback: refuse a missing one here
            require_extra("hydra/launcher", str(config.hydra.launcher.get("_target_", "")))
            check_launcher(config.hydra.launcher, config.trainer)
            check_sweeper(config.hydra.sweeper)
        except DescentlabError as err:
            _fail(err)
        from descentlab.run.sweep_jobs import same_command
        from hydra_plugins.descentlab_optuna.config import continues_study

        sweep_dir = Path(str(config.hydra.sweep.dir))
        # an Optuna study continues in its own sweep dir: its new jobs get new job numbers
        holds = run_dir.holds_a_sweep
        same = same_command(sweep_dir, config.hydra.overrides.task)
        if continues_study(config.hydra.sweeper, sweep_dir) and same:
            # (another command would add its trials, of another problem, to the study)
            holds = lambda path: False  # noqa: E731
        elif run_dir.holds_a_sweep(sweep_dir) and same:
            # the same command again finishes its sweep: each job skips, resumes or runs
            # (descentlab.run.sweep_jobs)
            holds = lambda path: False  # noqa: E731
            print(
                f"descentlab: continuing the sweep in {sweep_dir}: finished jobs are skipped, "
                "interrupted ones resumed",
                file=sys.stderr,
            )
        _claim(
            sweep_dir,
            holds,
            "sweep dir {path} already holds a multirun of another command: its jobs would be "
            "overwritten; choose another hydra.sweep.dir (the same command again, its "
            "overrides and values in the same order, finishes that sweep: the order numbers "
            "its jobs)",
            cleanup=False,
        )


class EvalRunDirGuard(RunDirGuard):
    """``eval.py``'s guard: lock its run dir and refuse one that holds results.

    Its ``ckpt_path`` names the model to test, not a run to resume: nothing of the
    resume checks applies.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim(
            Path(str(config.hydra.run.dir)),
            run_dir.holds_a_run,
            "run dir {path} already holds results: choose another hydra.run.dir",
            cleanup=True,
        )


class SweepSummary(Callback):
    """After a multirun, one line per job that did not complete, and a count.

    The jobs are read from the sweep dir (``<sweep dir>/<job number>/metrics.json``):
    with the submitit launchers they run in other processes, even other machines.
    """

    @staticmethod
    def jobs(sweep_dir: Path) -> list[tuple[str, str, str]]:
        jobs = []
        for job_dir in sorted(sweep_dir.iterdir() if sweep_dir.is_dir() else [], key=_job_order):
            if not job_dir.is_dir() or job_dir.name.startswith("."):
                continue
            status, reason = "failed", "no metrics.json"
            try:
                metrics = json.loads((job_dir / "metrics.json").read_text())
                status, reason = metrics.get("status", "completed"), metrics.get("reason", "")
            except (OSError, ValueError):
                pass
            jobs.append((job_dir.name, status, reason))
        return jobs

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = self.jobs(Path(str(config.hydra.sweep.dir)))
        bad = [(name, status, reason) for name, status, reason in jobs if status not in FINISHED]
        for name, status, reason in bad:
            print(f"descentlab: job {name} {status}: {reason}", file=sys.stderr)
        from descentlab.run.sweep_jobs import count_actions

        sweep_dir = Path(str(config.hydra.sweep.dir))
        actions = count_actions([sweep_dir / name for name, _, _ in jobs])
        done = ""
        if set(actions) - {"ran"}:  # a continued sweep: say what each job did
            done = " (" + ", ".join(f"{n} {a}" for a, n in sorted(actions.items())) + ")"
        print(
            f"descentlab: sweep finished: {len(jobs) - len(bad)} of {len(jobs)} jobs "
            f"completed{done}; results in {config.hydra.sweep.dir}",
            file=sys.stderr,
        )
        if jobs and len(bad) == len(jobs):
            # a failed job does not stop the sweep, but a sweep that produced nothing is a
            # failure a script or CI job must see (it exited 0)
            sys.exit(1)


def _job_order(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)
