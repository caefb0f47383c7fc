"""Errors a user can cause and fix. Each is shown as one line (see ``train.py``)."""

import signal


class DescentlabError(Exception):
    """Base class: shown to the user as one line and a non-zero exit, no traceback."""


class ConfigError(DescentlabError):
    """A config value is out of range or names something that does not exist."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


class DataNotFoundError(DescentlabError):
    """A dataset is not on disk and downloading was not asked for."""


class DataError(DescentlabError):
    """Dataset files exist but cannot be used (wrong format, labels out of range)."""


class DivergenceError(DescentlabError):
    """The loss became NaN or infinite."""


class CheckpointError(DescentlabError):
    """A checkpoint is missing, corrupt, truncated or unsafe to load."""


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
