"""Finding, checking, loading and safely writing checkpoints.

- ``SafeCheckpointIO`` refuses to write a checkpoint whose weights are NaN or infinite,
  so a diverged run cannot replace the last good checkpoint. A local file is written to
  a temporary file in the same directory and renamed over the old one (``os.replace`` is
  atomic on POSIX, and ``fsync=True`` can flush it first): a kill during a save leaves
  the previous checkpoint in place, never a truncated file. Any other fsspec URL
  (``s3://``, ``gs://``, ``memory://``, ...) goes to Lightning's own
  ``TorchCheckpointIO``, which writes inside an fsspec transaction (object stores
  publish an object only once its upload is complete).
- Every checkpoint is loaded with ``weights_only=True``, local or remote: a pickle that
  would build arbitrary objects (and so run code) is refused, with a one-line error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from descentlab.errors import CheckpointError

log = logging.getLogger(__name__)


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
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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
            cause = err
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(path)) from err
        finally:
            if tmp.exists():
                tmp.unlink()

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location)


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
