"""The callbacks a user selects (``callbacks=...``): op verification, best-weight early
stopping, diagnostics, divergence, fine-tuning, checkpoints, the progress bar.

The ones every run adds itself (metrics history, graceful SIGTERM stop, the config
recorded in checkpoints) are part of the run: ``descentlab.run.history``,
``descentlab.run.interrupt``, ``descentlab.storage.checkpoints.ConfigInCheckpoint``.
"""

from descentlab.callbacks.checkpointing import LastCheckpoint
from descentlab.callbacks.diagnostics import Diagnostics
from descentlab.callbacks.divergence import StopOnDivergence
from descentlab.callbacks.early_stopping import RestoreBestEarlyStopping
from descentlab.callbacks.finetuning import BackboneFinetuning
from descentlab.callbacks.progress import ProgressBar
from descentlab.callbacks.verify_ops import VerifyOps

__all__ = [
    "BackboneFinetuning",
    "Diagnostics",
    "LastCheckpoint",
    "RestoreBestEarlyStopping",
    "StopOnDivergence",
    "ProgressBar",
    "VerifyOps",
]
