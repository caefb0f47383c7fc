"""Rebuild a trained module from what a run wrote: a checkpoint, a ``model.pt``, a run dir.

Every training checkpoint carries the run's resolved ``model`` config (with its
optimizer and init, under ``torchfile.CONFIG_KEY``), so the network can be built again
with Hydra's ``instantiate`` and no other argument. ``model.pt`` holds the kept
network's weights only; its run dir's checkpoints (or, for a ``model.pt`` alone, the
config of the command) say how to build it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from descentlab.errors import CheckpointError
from descentlab.torchfile import exists, load_checkpoint


def run_checkpoint(run_dir: Path) -> Path | None:
    """A training checkpoint of ``run_dir`` (best, else last), if there is one."""
    for name in ("best.ckpt", "last.ckpt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    return None


def is_training_checkpoint(checkpoint: dict) -> bool:
    return "state_dict" in checkpoint and "loops" in checkpoint


def load_weights_into(module, weights: dict, path) -> None:
    """Load a ``model.pt`` (the network's state_dict) into ``module.net``, one line on a mismatch."""
    try:
        module.net.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"{path} does not fit the model config ({first}); give the model overrides it was "
            f"trained with"
        ) from None


def load(path: str | Path, model_cfg=None, map_location: Any = "cpu"):
    """The trained module of ``path``: a run dir, a training checkpoint or a ``model.pt``.

    - a run dir: its ``model.pt`` (the weights the run kept and tested) in the module its
      checkpoints describe; without ``model.pt``, the best (else last) checkpoint;
    - a training checkpoint (``.ckpt``, local or any fsspec URL): ``TaskModule.load_from_checkpoint``;
    - a ``model.pt``: built from its run dir's checkpoint, else from ``model_cfg`` (the
      command's ``cfg.model``).
    """
    from descentlab.models.module import TaskModule

    local = Path(str(path))
    if local.is_dir():
        run_dir = local
        weights = run_dir / "model.pt"
        if not weights.is_file():
            checkpoint = run_checkpoint(run_dir)
            if checkpoint is None:
                raise CheckpointError(f"run dir {run_dir} holds neither model.pt nor a checkpoint")
            return load(checkpoint, map_location=map_location)
        path = local = weights
    if not exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    checkpoint = load_checkpoint(path, map_location=map_location)
    if is_training_checkpoint(checkpoint):
        return TaskModule.load_from_checkpoint(str(path), map_location=map_location)
    # model.pt: network weights only
    spec = run_checkpoint(local.parent) if local.parent.is_dir() else None
    if spec is not None:
        module = TaskModule.load_from_checkpoint(str(spec), map_location=map_location)
    elif model_cfg is not None:
        from hydra.utils import instantiate

        # loaded for inference: eager, whatever model.compile the command says
        module = instantiate(model_cfg, **({"compile": False} if "compile" in model_cfg else {}))
    else:
        raise CheckpointError(
            f"{path} holds network weights only and no checkpoint beside it records the model: "
            f"give the model config it was trained with"
        )
    load_weights_into(module, checkpoint, path)
    return module
