"""Every error a user can cause and fix, and how any exception becomes one line.

Each :class:`DescentlabError` is shown as ``descentlab: error: <one line>`` with a
non-zero exit and no traceback (``HYDRA_FULL_ERROR=1`` shows it). Libraries wrap what
our classes raise (Hydra's ``InstantiationException``, OmegaConf's resolver errors,
torch's ``RuntimeError`` around a full disk), so the error a user must see is found by
walking the exception chain: :func:`causes` is the one walker, :func:`user_error` and
:func:`failure_reason` the two questions asked of it.

Torch-free: the CLI imports this before deciding whether torch is needed at all.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Iterator


class DescentlabError(Exception):
    """Base class: shown to the user as one line and a non-zero exit, no traceback."""


class ConfigError(DescentlabError):
    """A config value is out of range or names something that does not exist."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


class ParameterError(ConfigError):
    """A constructor's argument is out of range. The class names its parameter (``lr``);
    built from a config, the run names the key the user wrote (:meth:`at`)."""

    def at(self, prefix: str) -> ConfigError:
        """The same error on the config key ``prefix.<parameter>`` (``optimizer.lr``)."""
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.value, self.allowed)


class BuildError(DescentlabError):
    """An object of the config could not be built (a bad value its class refused)."""


class DataNotFoundError(DescentlabError):
    """A dataset is not on disk and downloading was not asked for."""


class DataError(DescentlabError):
    """Dataset files exist but cannot be used (wrong format, labels out of range)."""


class DivergenceError(DescentlabError):
    """The loss became NaN or infinite."""


class OpVerificationError(DescentlabError):
    """The op table's gradients disagree with native autograd beyond the tolerance."""


class CheckpointError(DescentlabError):
    """A checkpoint is missing, corrupt, truncated or unsafe to load."""


class StorageError(DescentlabError):
    """A file of the run could not be written (disk full, read-only file system, ...)."""


class RunDirError(DescentlabError):
    """The run dir cannot be used: in use, not writable, a file, or holding another run."""


class ReportError(DescentlabError):
    """Nothing to report on, or runs that cannot be compared."""


class RunAlreadyFinished(DescentlabError):
    """Resuming a run that has nothing left to train (reported as one line, exit 0)."""


class RunInterrupted(DescentlabError):
    """The run was asked to stop (a signal); ``last.ckpt`` holds where it stopped."""

    def __init__(self, message: str, signum: int = signal.SIGTERM, checkpoint: str | None = None):
        super().__init__(message)
        self.signum, self.checkpoint = signum, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)  # the shell's convention: 143 for SIGTERM


# OSErrors a user fixes outside the code: space, permissions, a path that is a file.
STORAGE_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EEXIST,
)


def causes(err: BaseException | None) -> Iterator[BaseException]:
    """``err``, then what it wraps (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        yield err
        seen.add(id(err))
        err = err.__cause__ or err.__context__


def own_error(err: BaseException | None) -> DescentlabError | None:
    """The first one-line error of ours in ``err``'s chain."""
    return next((e for e in causes(err) if isinstance(e, DescentlabError)), None)


def storage_error(err: BaseException | None) -> StorageError | None:
    """A one-line :class:`StorageError` for the first storage OSError in ``err``'s chain."""
    for e in causes(err):
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            where = e.filename or "a file of the run"
            return StorageError(
                f"cannot write {where}: {e.strerror} (the files written before are kept)"
            )
    return None


def user_error(err: BaseException) -> Exception | None:
    """What to show a user for ``err``, or None when it is a bug (then: a traceback).

    Ours first; else a config error of OmegaConf's (a missing ``???``) unless ours is
    behind it (a resolver's own error); else a storage OSError.
    """
    from omegaconf.errors import OmegaConfBaseException

    ours = own_error(err)
    if ours is not None:
        return ours
    config = next((e for e in causes(err) if isinstance(e, OmegaConfBaseException)), None)
    return config or storage_error(err)


def failure_reason(err: BaseException) -> str:
    """One line for ``metrics.json``'s ``reason``: a user error's message, else ``Type: message``."""
    storage = storage_error(err)
    if storage is not None:
        return str(storage)
    message = one_line(str(err))
    return message if isinstance(err, DescentlabError) else f"{type(err).__name__}: {message}"


def one_line(message: str) -> str:
    """Collapse Hydra/OmegaConf's multi-line message: text lines joined, options listed."""
    text, options = [], []
    for line in str(message).splitlines():
        if line.startswith("Config search path") or line.startswith("Set the environment variable"):
            break
        stripped = line.strip()
        if not stripped or stripped.startswith(("full_key:", "object_type", "reference_type")):
            continue
        if line.startswith("\t"):
            options.append(stripped)
        else:
            text.append(stripped.rstrip(":"))
    result = " ".join(text)
    return f"{result}: {', '.join(options)}" if options else result
