"""A console that prints each line once and nothing a user cannot act on."""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class DropAdvertisements(logging.Filter):
    """Drop Lightning's "💡 Tip: ... try installing litlogger" line, printed on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def tidy_console() -> None:
    """Lightning's info lines once, without its advertisement; no warnings that do not apply.

    - Lightning gives its loggers a handler of their own when it is imported before logging
      is configured, as it is under Hydra; once Hydra's job logging has configured the root
      logger, every line was printed twice (Lightning's handler, then Hydra's). With a
      configured root logger, Lightning's loggers here only pass their records up to it
      (and so also into the run's ``train.log``).
    - ``sync_dist=True`` warnings: the TaskModule logs epoch values that torchmetrics has
      already reduced over all ranks (``compute()``), so syncing them again would only cost.
    - "``training_step`` returned ``None``": in one process the TaskModule skips, on purpose,
      a batch left empty by ``data.on_bad_image=skip`` (the skipped files are reported).
    """
    root = logging.getLogger()
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if root.handlers:
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, DropAdvertisements) for f in rank_zero.filters):
        rank_zero.addFilter(DropAdvertisements())
    warnings.filterwarnings("ignore", r".*sync_dist=True.*when logging on epoch level.*")
    # A resume writes into its own checkpoints/ on purpose (a fresh run into a dir that holds
    # a run is refused before this point, by the run-dir guard)
    warnings.filterwarnings("ignore", r".*Checkpoint directory .* exists and is not empty.*")
    # Lightning's own use of a torch API torch has deprecated: not the user's to act on
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")
    # the TaskModule returns None on purpose for a batch with no readable image
    warnings.filterwarnings("ignore", r".*`training_step` returned `None`.*")
    # torchdata's StatefulDataLoader calls a torch function that torch has deprecated: not
    # the user's to act on (data=image_folder)
    warnings.filterwarnings("ignore", r".*'set_vital' is deprecated.*")
    # BackboneFinetuning at its unfreezing epoch: the BatchNorm layers (train_bn) and fresh
    # layers trained from the start, so they are in the optimizer already, as intended
    warnings.filterwarnings("ignore", r".*params to be frozen already exist within another group.*")
