"""The sweeper's options as a structured config, stored in Hydra's ConfigStore as
``hydra/sweeper=optuna``; and whether a sweep dir holds the study a sweep would continue.

Optuna-free: Hydra imports every ``hydra_plugins`` module whenever it starts (any
``python train.py``), so importing Optuna here would slow every run. No ``from __future__
import annotations`` either: Hydra's plugin scan runs this module before it is in
``sys.modules``, where ``dataclass`` looks up string annotations.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

TARGET = "hydra_plugins.descentlab_optuna.sweeper.OptunaSweeper"


@dataclass
class OptunaSweeperConf:
    _target_: str = TARGET
    # the sampler is built by the sweeper (a continued study seeds it past its trials)
    _recursive_: bool = False
    # any Optuna sampler; TPE seeded with the run's seed makes a sweep repeatable
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": "${seed}"}
    )
    # minimize | maximize; default: the way the value each job returns is better
    # (optimized_metric, else task.objective: val/acc -> maximize, val/loss -> minimize)
    direction: str = "${objective_direction:${optimized_metric},${task.objective}}"
    study_name: str = "${hydra.job.name}"
    # the study lives in the sweep dir: the same command with the same hydra.sweep.dir
    # continues it (null: in memory, gone when the sweep ends)
    storage: str | None = "sqlite:///${hydra.sweep.dir}/optuna.db"
    n_trials: int = 20
    # trials asked at once and handed to the launcher as one batch (run in parallel by the
    # joblib and submitit launchers)
    n_jobs: int = 1
    # the search space: key -> interval(...), tag(log, interval(...)), choice(...), range(...)
    # or a fixed value (Hydra's override grammar)
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="descentlab"
)


def sqlite_file(storage: str | None) -> Path | None:
    """The database file of a ``sqlite:///PATH`` storage URL, else None."""
    if not storage or not str(storage).startswith("sqlite:///"):
        return None
    return Path(str(storage)[len("sqlite:///") :].split("?", 1)[0])


def continues_study(sweeper: Any, sweep_dir: str | Path) -> bool:
    """True when this multirun is an Optuna sweep whose study database already lies in its
    sweep dir: the run-dir guard lets it continue there (new trials get new job numbers)."""
    if str(sweeper.get("_target_", "")) != TARGET:
        return False
    db = sqlite_file(sweeper.get("storage"))
    if db is None or not db.is_file():
        return False
    return db.resolve().is_relative_to(Path(sweep_dir).resolve())
