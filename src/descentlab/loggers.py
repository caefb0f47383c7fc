"""Logger factories that need a decision at run time (W&B online or offline)."""

from __future__ import annotations

import os


def wandb_has_credentials() -> bool:
    """True when W&B can log in: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    if os.path.exists(netrc):
        with open(netrc) as f:
            return "api.wandb.ai" in f.read()
    return False


def wandb_logger(offline: bool | None = None, **kwargs):
    """Lightning's WandbLogger, offline when no account is configured.

    Offline runs are written under ``save_dir/wandb/offline-run-*`` and can be uploaded
    later with ``wandb sync DIR``. ``WANDB_MODE`` from the environment wins when set.
    """
    from lightning.pytorch.loggers import WandbLogger  # wandb imported only when chosen

    if offline is None:
        offline = os.environ.get("WANDB_MODE") in ("offline", "dryrun") or (
            os.environ.get("WANDB_MODE") != "online" and not wandb_has_credentials()
        )
    os.makedirs(kwargs.get("save_dir", "."), exist_ok=True)
    return WandbLogger(offline=offline, **kwargs)
