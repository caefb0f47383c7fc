"""Callbacks: op verification, best-weight early stopping, diagnostics."""

from descentlab.callbacks.diagnostics import Diagnostics
from descentlab.callbacks.divergence import StopOnDivergence
from descentlab.callbacks.early_stopping import RestoreBestEarlyStopping
from descentlab.callbacks.verify_ops import OpVerificationError, VerifyOps

__all__ = [
    "Diagnostics",
    "RestoreBestEarlyStopping",
    "StopOnDivergence",
    "OpVerificationError",
    "VerifyOps",
]
