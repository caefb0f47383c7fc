"""Reading a file ``torch.save`` wrote, safely: ``weights_only=True``, local or any fsspec URL.

The checkpoint format's own names live here too (:data:`CONFIG_KEY`), so that the model
layer (``TaskModule.load_from_checkpoint``, a backbone's ``model.net.checkpoint``) and the
run layer read the same files the same way without importing each other.
"""

from __future__ import annotations

from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem

from descentlab.errors import CheckpointError

# Where every training checkpoint records the run's resolved model/data/optimizer/init/seed
# (written by storage.checkpoints.ConfigInCheckpoint; read by resume and by loading).
CONFIG_KEY = "descentlab_config"
# the training data's class names (an image folder's folder names; label ids otherwise), so
# that a prediction names classes as the training data did, wherever those data are now
CLASS_NAMES_KEY = "descentlab_class_names"


def is_local(path) -> bool:
    """True for a plain path or a ``file://`` URL, False for any other fsspec URL."""
    return isinstance(fsspec.core.url_to_fs(str(path))[0], LocalFileSystem)


def local_path(path) -> str:
    """``path`` without a ``file://`` prefix."""
    return fsspec.core.url_to_fs(str(path))[1] if str(path).startswith("file://") else str(path)


def exists(path) -> bool:
    """Whether ``path`` (a local path or any fsspec URL) is an existing file."""
    fs, where = fsspec.core.url_to_fs(str(path))
    return fs.isfile(where)


def load_checkpoint(path, map_location: Any | None = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors for missing, corrupt or unsafe files.

    ``path`` is a local path or any fsspec URL (``s3://bucket/run/last.ckpt``, ``memory://...``).
    """
    fs, where = fsspec.core.url_to_fs(str(path))
    if not fs.isfile(where):
        raise CheckpointError(f"checkpoint {path} does not exist")
    with fs.open(where, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (legacy files: a pickle, first byte 0x80)
    if head[:4] != b"PK\x03\x04" and head[:1] != b"\x80":
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated (not a file torch.save wrote)"
        )
    try:
        with fs.open(where, "rb") as f:
            return torch.load(f, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever torch says, the file is the problem
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain data; it was not loaded, "
                f"because unpickling them could run arbitrary code ({first})"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first})") from None
