"""Callbacks: op verification, best-weight early stopping, diagnostics."""

from descentlab.callbacks.verify_ops import OpVerificationError, VerifyOps

__all__ = ["OpVerificationError", "VerifyOps"]
