"""The sweep loop: ask Optuna for a batch of trials, launch them as Hydra jobs, tell the values.

Only Optuna's public ask-and-tell API (``study.ask(fixed_distributions=...)``,
``study.tell``): Optuna samples, Hydra's launcher runs, nothing here optimizes.

- Each trial is one job launched by ``self.launcher`` like any multirun's, so every launcher
  works (``n_jobs`` trials per batch run in parallel under joblib or submitit).
- A job that raised, exited non-zero, or returned None or NaN (a failed or diverged run:
  ``run_task`` returns None for a recorded failure) is told as FAIL and the study goes on.
- The study is stored in the sweep dir: re-running the command with the same
  ``hydra.sweep.dir`` loads it; new trials get job numbers after every job already there,
  so no job dir is written twice. Trials left RUNNING by an interrupted sweep of this
  sweep dir (which the run-dir guard locks: no other sweeper is using it) are told FAIL.
- At the end: a short summary, and ``optuna_results.yaml`` in the sweep dir.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from descentlab.errors import ConfigError, DescentlabError
from hydra_plugins.descentlab_optuna import space as search_space
from hydra_plugins.descentlab_optuna.config import sqlite_file

DIRECTIONS = ("minimize", "maximize")
RESULTS = "optuna_results.yaml"


def trial_value(job_return: Any) -> float | None:
    """The job's value for Optuna, or None when the trial failed."""
    from hydra.core.utils import JobStatus

    if job_return.status != JobStatus.COMPLETED:
        return None  # its return_value would re-raise the job's exception
    value = job_return.return_value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: str,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        params: DictConfig | None,
    ) -> None:
        self.sampler, self.direction = sampler, str(direction)
        self.study_name, self.storage = study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.params = dict(params or {})

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: list[str]) -> list[Any]:
        try:
            return self._sweep(arguments)
        except DescentlabError as err:  # a bad option: one line, like every other refusal
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"descentlab: error: {err}", file=sys.stderr)
            sys.exit(1)

    def _check_options(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError("hydra.sweeper.direction", self.direction, "minimize or maximize")
        if self.n_trials < 1:
            raise ConfigError("hydra.sweeper.n_trials", self.n_trials, "an integer >= 1")
        if self.n_jobs < 1:
            raise ConfigError("hydra.sweeper.n_jobs", self.n_jobs, "an integer >= 1")

    def _sampler(self, trials_before: int) -> Any:
        """The configured sampler. A seeded sampler restarts its random sequence in every
        process, so a continued study (``trials_before`` > 0) seeds it with ``seed +
        trials_before``: new points, and still the same ones for the same history."""
        from hydra.utils import instantiate

        if not isinstance(self.sampler, (dict, DictConfig)):
            return self.sampler  # an instance, from Python
        cfg = OmegaConf.to_container(OmegaConf.create(self.sampler), resolve=True)
        if trials_before and cfg.get("seed") is not None:
            cfg["seed"] = int(cfg["seed"]) + trials_before
        return instantiate(cfg)

    def _open_study(self) -> Any:
        import optuna

        db = sqlite_file(self.storage)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self._sampler(0),
            direction=self.direction,
            load_if_exists=True,
        )
        trials_before = len(study.get_trials(deepcopy=False))
        if trials_before:
            study.sampler = self._sampler(trials_before)
        if study.direction.name.lower() != self.direction:
            raise ConfigError(
                "hydra.sweeper.direction",
                self.direction,
                f"the study {self.study_name!r} in {self.storage} was created to "
                f"{study.direction.name.lower()}: keep that, or choose another hydra.sweep.dir",
            )
        if db is not None and db.resolve().is_relative_to(self.sweep_dir.resolve()):
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            for trial in running:  # left by an interrupted sweep of this (locked) sweep dir
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        return study

    def _first_job_number(self, study: Any) -> int:
        """After every job of the study and every job dir already in the sweep dir."""
        numbers = [t.user_attrs.get("job", -1) for t in study.get_trials(deepcopy=False)]
        if self.sweep_dir.is_dir():
            numbers += [int(p.name) for p in self.sweep_dir.iterdir() if p.name.isdigit()]
        return max(numbers, default=-1) + 1

    def _sweep(self, arguments: list[str]) -> list[Any]:
        import optuna

        self._check_options()
        entries = [(f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in self.params.items()]
        entries += [(a.partition("=")[0], a) for a in arguments]
        space, fixed = search_space.parse(entries)
        study = self._open_study()
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        job = self._first_job_number(study)
        returns: list[Any] = []
        left = self.n_trials
        while left > 0:
            trials = [study.ask(fixed_distributions=space) for _ in range(min(self.n_jobs, left))]
            batch = []
            for number, trial in enumerate(trials, start=job):
                trial.set_user_attr("job", number)
                sampled = (search_space.override_text(k, v) for k, v in trial.params.items())
                batch.append((*fixed, *sampled))
            try:
                self.validate_batch_is_legal(batch)  # a bad key fails here, not in every job
                done = self.launcher.launch(batch, initial_job_idx=job)
            except BaseException:
                # a stop (SIGTERM, Ctrl-C) ends the sweep; a job that finished before it
                # keeps its value (it came as that job ended: the job is done, not failed)
                for number, trial in enumerate(trials, start=job):
                    value = self._recorded_value(self.sweep_dir / str(number))
                    if value is None:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    else:
                        study.tell(trial, value)
                raise
            for trial, job_return in zip(trials, done, strict=True):
                value = trial_value(job_return)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
            returns += done
            job += len(trials)
            left -= len(trials)
        self._report(study, len(returns))
        return returns

    def _recorded_value(self, job_dir: Path) -> float | None:
        """The objective a finished job recorded in its ``metrics.json``; None otherwise."""
        import json

        from descentlab.run import FINISHED

        try:
            metrics = json.loads((job_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            return None
        value = metrics.get(self._objective())
        if metrics.get("status") not in FINISHED or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) else None

    def _objective(self) -> str:
        cfg = self.config
        return str(cfg.get("optimized_metric") or OmegaConf.select(cfg, "task.objective"))

    def _report(self, study: Any, launched: int) -> None:
        """A few lines on stdout, and ``optuna_results.yaml`` (best params and value)."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        failed = sum(t.state == TrialState.FAIL for t in trials)
        best = study.best_trial if complete else None
        params = {
            k: search_space.plain_value(k, v) for k, v in (best.params if best else {}).items()
        }
        results = {
            "name": study.study_name,
            "objective": self._objective(),
            "direction": self.direction,
            "best_value": best.value if best else None,
            "best_params": params,
            "best_job": best.user_attrs.get("job") if best else None,
            "trials": {"complete": len(complete), "failed": failed, "total": len(trials)},
            "storage": self.storage,
        }
        path = self.sweep_dir / RESULTS
        OmegaConf.save(OmegaConf.create(results), path)
        print(
            f"optuna: study {study.study_name!r}, {self.direction} {results['objective']}: "
            f"{launched} trials run now, {len(trials)} in the study "
            f"({len(complete)} complete, {failed} failed)"
        )
        if best is None:
            print("optuna: no trial completed")
        else:
            overrides = " ".join(search_space.override_text(k, v) for k, v in best.params.items())
            print(f"optuna: best {best.value:.6g} (job {results['best_job']}): {overrides}")
        print(f"optuna: results in {path}; study in {self.storage or 'memory (not kept)'}")
        if self.storage:
            print("optuna: the same command with the same hydra.sweep.dir continues the study")
