"""Callbacks: op verification, best-weight early stopping, diagnostics."""

from descentlab.callbacks.diagnostics import Diagnostics
from descentlab.callbacks.verify_ops import OpVerificationError, VerifyOps

__all__ = ["Diagnostics", "OpVerificationError", "VerifyOps"]
