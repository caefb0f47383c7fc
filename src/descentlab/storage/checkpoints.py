"""Finding, checking, loading and safely writing checkpoints.

- ``SafeCheckpointIO`` refuses to write a checkpoint whose weights are NaN or infinite,
  so a diverged run cannot replace the last good checkpoint. A local file is written to
  a temporary file in the same directory and renamed over the old one (``os.replace`` is
  atomic on POSIX, and ``fsync=True`` can flush it first): a kill during a save leaves
  the previous checkpoint in place, never a truncated file. Any other fsspec URL
  (``s3://``, ``gs://``, ``memory://``, ...) goes to Lightning's own
  ``TorchCheckpointIO``, which writes inside an fsspec transaction (object stores
  publish an object only once its upload is complete).
- Every checkpoint is loaded (:mod:`descentlab.torchfile`) with ``weights_only=True``, local or remote: a pickle that
  would build arbitrary objects (and so run code) is refused, with a one-line error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Callback

from descentlab.errors import causes
from descentlab.storage.atomic import remove_stale_temporaries, temporary_path
from descentlab.torchfile import CLASS_NAMES_KEY, CONFIG_KEY, is_local, load_checkpoint, local_path

log = logging.getLogger(__name__)


class ConfigInCheckpoint(Callback):
    """Store the run's fixed config sections (``config``) in every checkpoint it writes.

    Always on (added by the run, not selectable): a resume and ``load`` depend on it.
    """

    def __init__(self, config: dict[str, Any], class_names: list[str] | None = None):
        self.config, self.class_names = config, class_names

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = self.config
        if self.class_names is not None:
            checkpoint[CLASS_NAMES_KEY] = list(self.class_names)


def all_finite(checkpoint: dict[str, Any]) -> bool:
    state = checkpoint.get("state_dict", {})
    return all(
        torch.isfinite(t).all()
        for t in state.values()
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic, finite-only checkpoint writes; ``weights_only=True`` reads.

    ``fsync=True`` also flushes each file to the disk before the rename, which protects
    against a power loss or an OS crash too (a killed process is covered without it),
    at the cost of waiting for the disk on every save.
    """

    def __init__(self, fsync: bool = False):
        super().__init__()
        self.fsync = fsync

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if not all_finite(checkpoint):
            log.warning(
                "not writing %s: the weights are not finite (the previous file is kept)", path
            )
            return
        if not is_local(path):
            super().save_checkpoint(checkpoint, str(path), storage_options)
            return
        path = Path(local_path(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:
            # torch reports a full disk as a RuntimeError whose context is the OSError:
            # re-raise the OSError, naming the checkpoint rather than the temporary file
            cause = next((e for e in causes(err) if isinstance(e, OSError)), None)
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(path)) from err
        finally:
            if tmp.exists():
                tmp.unlink()
        remove_stale_temporaries(path)  # a save killed mid-write left its temporary file

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location)
