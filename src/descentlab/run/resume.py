"""Resuming a run: which checkpoint, whether it fits this config, whether there is anything left to do.

``ckpt_path=last`` means this run dir's ``checkpoints/last.ckpt`` and nothing else: a
resume never picks up another run's weights. Before Lightning sees the checkpoint it is
checked here, each problem one line:

- it is a training checkpoint (not a ``model.pt``), with finite weights;
- it was trained with the same ``model``, ``data``, ``optimizer``, ``init`` and ``seed``
  (recorded in the checkpoint by ``storage.checkpoints.ConfigInCheckpoint``). A resume restores the
  optimizer's state and hyperparameters, the data order and the weights from the file,
  so a change there would be silently ignored or would not load: it is refused, naming
  the keys. ``trainer.*``, ``callbacks``, ``logger`` and ``test`` may change;
- there is something left to train: a checkpoint whose run early-stopped or reached
  ``trainer.max_epochs`` is finished (:class:`RunAlreadyFinished`, exit 0, nothing written).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from descentlab.errors import CheckpointError, ConfigError, RunAlreadyFinished
from descentlab.run.job import requeued_checkpoint
from descentlab.torchfile import CONFIG_KEY, load_checkpoint

# Config sections a resumed run must share with the checkpoint's run.
RESUME_FIXED = ("model", "data", "optimizer", "init", "seed")


def fixed_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved sections a resume may not change (see module docstring)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        if isinstance(cfg.get(key), DictConfig)
        else cfg.get(key)
        for key in RESUME_FIXED
        if key in cfg
    }


def raw_fixed_config(cfg: DictConfig) -> dict[str, Any]:
    """The fixed sections' keys, flattened, unresolved: ``${...}`` where a key follows another."""
    return flatten(
        {
            key: OmegaConf.to_container(cfg[key], resolve=False)
            for key in RESUME_FIXED
            if isinstance(cfg.get(key), DictConfig)
        }
    )


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


@dataclass
class Resume:
    """A checked checkpoint to resume from."""

    path: str
    global_step: int
    epochs_done: int


def epochs_done(checkpoint: dict) -> int:
    """Epochs fully trained when the checkpoint was written (an epoch in progress not counted)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    return int(progress.get("current", {}).get("processed", checkpoint.get("epoch", 0)))


def early_stopped(checkpoint: dict) -> bool:
    for name, state in checkpoint.get("callbacks", {}).items():
        if "EarlyStopping" in str(name) and isinstance(state, dict):
            if state.get("stopped_epoch", 0) > 0 or state.get("stopping_reason", 0) not in (
                0,
                None,
            ):
                return True
    return False


def newest_last_checkpoint(log_dir: str | Path) -> Path | None:
    candidates = sorted(Path(log_dir).glob("**/checkpoints/last.ckpt"), key=os.path.getmtime)
    return candidates[-1] if candidates else None


def resolve(ckpt_path: str | None, cfg: DictConfig) -> str | None:
    """``ckpt_path`` as given, or ``last``: this run dir's ``checkpoints/last.ckpt``.

    Without one, a requeued SLURM job resumes its own run dir (:func:`requeued_checkpoint`).
    """
    if ckpt_path in (None, ""):
        return requeued_checkpoint(cfg.paths.output_dir)
    if ckpt_path != "last":
        return str(ckpt_path)
    output_dir = Path(cfg.paths.output_dir)
    own = output_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        return str(own)
    newest = newest_last_checkpoint(cfg.paths.log_dir)
    hint = (
        f"; the newest under {cfg.paths.log_dir} is {newest}: resume it with "
        f"hydra.run.dir={newest.parent.parent}"
        if newest is not None
        else ""
    )
    raise CheckpointError(f"ckpt_path=last: {output_dir} has no checkpoints/last.ckpt{hint}")


def non_finite_keys(state: dict[str, Any]) -> list[str]:
    return [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]


def added_at_default(key: str, config: dict[str, Any]) -> bool:
    """True when ``key`` (flattened, e.g. ``model.net.dropout_form``) is at the default of
    the parameter it configures: a key the template added after a checkpoint was written
    changes nothing for that run, so it does not block the resume."""
    import inspect

    from hydra.utils import get_object

    node, _, name = key.rpartition(".")
    target = config.get(f"{node}._target_")
    try:
        cls = get_object(target)
    except Exception:  # noqa: BLE001 - no importable target: the key counts as a change
        return False
    for owner in inspect.getmro(cls) if inspect.isclass(cls) else [cls]:
        try:
            parameter = inspect.signature(owner).parameters.get(name)
        except (TypeError, ValueError):  # a builtin base (object) has no signature to read
            continue
        if parameter is not None and parameter.kind is not parameter.VAR_KEYWORD:
            return parameter.default is not parameter.empty and parameter.default == config[key]
    return False


# overrides a resume may change: they are not the checkpoint's config
RESUME_KEYS = ("ckpt_path", "trainer.max_epochs", "hydra.run.dir")


def what_to_give(path: str, cfg: DictConfig) -> str:
    """The advice of a refused resume: the run's own overrides that this command lacks (read
    from the run's ``.hydra/overrides.yaml``), else "drop these overrides". A user who
    resumes without the run's ``optimizer=sgd`` has no override to drop."""
    current = OmegaConf.select(cfg, "hydra.overrides.task")
    if current is None:
        from hydra.core.hydra_config import HydraConfig

        current = HydraConfig.get().overrides.task if HydraConfig.initialized() else None
    recorded_file = Path(path).parent.parent / ".hydra" / "overrides.yaml"
    try:
        recorded = OmegaConf.load(recorded_file) if current is not None else None
    except (OSError, ValueError):
        recorded = None
    if recorded is not None and OmegaConf.is_list(recorded):
        given = {str(o) for o in current}
        missing = [
            str(o)
            for o in recorded
            if str(o) not in given and str(o).lstrip("+~").split("=", 1)[0] not in RESUME_KEYS
        ]
        if missing:
            return f"the run was made with {' '.join(missing)}: give that again"
    return "drop these overrides"


def precheck(path: str, cfg: DictConfig) -> dict:
    """The checks that need only the file and the config (run before Hydra writes anything)."""
    checkpoint = load_checkpoint(path)
    if "state_dict" not in checkpoint or "loops" not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={path} holds network weights only (a model.pt), not a training checkpoint: "
            f"resume from a run's checkpoints/last.ckpt; model.net.checkpoint=PATH starts a backbone "
            f"from such weights"
        )
    bad = non_finite_keys(checkpoint["state_dict"])
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds non-finite weights ({', '.join(bad[:3])}); it cannot be "
            f"resumed: resume an earlier checkpoint or start a new run"
        )
    saved = checkpoint.get(CONFIG_KEY)
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        from descentlab.models.rebuild import upgraded

        saved = {**saved, "model": upgraded(saved["model"])}  # an older version's names
    if saved is not None:
        before, now = flatten(saved), flatten(fixed_config(cfg))
        differing = sorted(
            k
            for k in before.keys() | now.keys()
            if before.get(k) != now.get(k) and not (k not in before and added_at_default(k, now))
        )
        if differing:
            raw = raw_fixed_config(cfg)

            def named(key: str) -> str:  # a key that follows another one says which
                source = raw.get(key)
                return f"{key} (= {source})" if isinstance(source, str) and "${" in source else key

            shown = ", ".join(
                f"{named(k)}: {before.get(k)!r} -> {now.get(k)!r}" for k in differing[:4]
            )
            more = f" (+{len(differing) - 4} more)" if len(differing) > 4 else ""
            raise CheckpointError(
                f"cannot resume {path} with a different config ({shown}{more}): a resume keeps the "
                f"checkpoint's model, data, optimizer, init and seed; {what_to_give(path, cfg)}, "
                f"or start a new run (another hydra.run.dir) to change them"
            )
    done = epochs_done(checkpoint)
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs not in (None, -1) and done > max_epochs:
        raise ConfigError(
            "trainer.max_epochs",
            max_epochs,
            f"at least {done}: the checkpoint {path} has already trained {done} epochs",
        )
    if early_stopped(checkpoint) or (max_epochs not in (None, -1) and done == max_epochs):
        why = (
            "early-stopped"
            if early_stopped(checkpoint)
            else f"reached trainer.max_epochs={max_epochs}"
        )
        raw = raw_fixed_config(cfg)
        follows = sorted(
            k for k, v in raw.items() if isinstance(v, str) and "trainer.max_epochs" in v
        )
        hint = (
            f"{follows[0]} follows trainer.max_epochs, so a longer run is a new run: another "
            f"hydra.run.dir"
            if follows
            else "raise trainer.max_epochs to train a run that did not early-stop"
        )
        raise RunAlreadyFinished(
            f"nothing to resume: the run of {path} already finished ({why} after {done} epochs); "
            f"its results are unchanged ({hint})"
        )
    return checkpoint


def metric_state_keys(model: torch.nn.Module) -> set[str]:
    """state_dict keys of torchmetrics states (not weights: not compared between runs)."""
    from torchmetrics import Metric

    prefixes = [f"{name}." for name, m in model.named_modules() if isinstance(m, Metric) and name]
    return {k for k in model.state_dict() if any(k.startswith(p) for p in prefixes)}


def check(path: str, cfg: DictConfig, model: torch.nn.Module) -> Resume:
    """Load ``path`` and refuse, in one line, anything that cannot resume into ``cfg``/``model``."""
    checkpoint = precheck(path, cfg)
    ignored = metric_state_keys(model)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in ignored}
    found = {
        k: tuple(v.shape)
        for k, v in checkpoint["state_dict"].items()
        if hasattr(v, "shape") and k not in ignored
    }
    mismatched = sorted(
        k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k)
    )
    if mismatched:
        key = mismatched[0]
        raise CheckpointError(
            f"checkpoint {path} does not fit this model: {key} is {found.get(key)} in the checkpoint, "
            f"{expected.get(key)} here ({len(mismatched)} tensors differ); resume with the model "
            f"config it was trained with"
        )
    return Resume(str(path), int(checkpoint.get("global_step", 0)), epochs_done(checkpoint))
