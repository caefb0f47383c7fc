"""``python train.py -m hparams_search=optuna``: a thin Hydra Sweeper on Optuna's ask-and-tell API.

Why not the official ``hydra-optuna-sweeper``: its releases (1.2.0, 1.3.0) pin ``optuna<3``,
which no longer works with SQLAlchemy 2. This package is the glue only; Optuna does all the
optimizing (its seeded TPE sampler, its storage):

- ``config.py``: the sweeper's options, registered as ``hydra/sweeper=optuna``;
- ``space.py``: ``hydra.sweeper.params`` in Hydra's override grammar -> Optuna distributions;
- ``sweeper.py``: ask a batch of trials, launch them with the configured launcher (basic,
  joblib, submitit: each trial is an ordinary Hydra job), tell Optuna each job's value.

No pruning (stopping a poor trial early from its per-epoch val metrics). A pruner needs the
running job to call ``trial.report(value, epoch)`` and ``trial.should_prune()`` on a live
``optuna.trial.Trial``; the job runs in another process (submitit: another machine), and
Optuna's public API hands such an object only to the process that asked for it
(``study.ask()`` / ``study.optimize``). Rebuilding one in the job means ``Trial(study,
trial_id)``, whose docs say not to call it directly, with the internal trial id, and a
storage every job can write to at once (not the default SQLite file on a cluster's shared
disk). Without it the sweep stays on public API only; each trial trains its full budget.
"""
