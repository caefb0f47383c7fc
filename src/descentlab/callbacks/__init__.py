"""Callbacks: op verification, best-weight early stopping, diagnostics, run bookkeeping."""

from descentlab.callbacks.checkpointing import LastCheckpoint
from descentlab.callbacks.diagnostics import Diagnostics
from descentlab.callbacks.divergence import StopOnDivergence
from descentlab.callbacks.early_stopping import RestoreBestEarlyStopping
from descentlab.callbacks.finetuning import BackboneFinetuning
from descentlab.callbacks.history import MetricsHistory
from descentlab.callbacks.interrupt import GracefulStop, RunInterrupted, StopRequest
from descentlab.callbacks.progress import ProgressBar
from descentlab.callbacks.verify_ops import OpVerificationError, VerifyOps

__all__ = [
    "BackboneFinetuning",
    "Diagnostics",
    "GracefulStop",
    "LastCheckpoint",
    "MetricsHistory",
    "RestoreBestEarlyStopping",
    "RunInterrupted",
    "StopOnDivergence",
    "StopRequest",
    "OpVerificationError",
    "ProgressBar",
    "VerifyOps",
]
