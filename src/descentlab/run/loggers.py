"""Loggers that survive a resume, and the W&B logger (offline when there is no account).

A resumed run keeps its history: each logger continues the run it started, and drops
what the killed process logged after the checkpoint it resumes from (those steps are
trained again). ``resume_kwargs`` tells ``train.run`` what to pass to each logger.
"""

from __future__ import annotations

import csv
import os
import secrets
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from descentlab.storage.atomic import write_atomically

WANDB_ID_FILE = "descentlab-wandb-id"


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued.

    Lightning deletes a non-empty log dir's ``metrics.csv`` when a writer starts there.
    Here the rows logged before step ``keep_below_step`` are kept (the rows at or after
    it came from steps the resumed run trains again), and new rows are appended.
    """

    def __init__(self, log_dir: str, keep_below_step: int | None):
        self.keep_below_step = keep_below_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # called by the base __init__
        path = Path(self.metrics_file_path)
        if self.keep_below_step is None or not path.is_file():
            super()._check_log_dir_exists()
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [
                r for r in reader if r.get("step") and int(float(r["step"])) < self.keep_below_step
            ]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)

        write_atomically(path, write)
        self.metrics_keys = sorted(keys)


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` that appends to the run's ``metrics.csv`` on a resume.

    Args:
        keep_below_step: set by ``train.run`` on a resume to the checkpoint's global step.
    """

    def __init__(self, *args, keep_below_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_below_step = keep_below_step

    @property
    @rank_zero_experiment  # as Lightning's: other ranks get a dummy, only rank 0 touches the file
    def experiment(self):
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self.keep_below_step)
        return self._experiment


def wandb_has_credentials() -> bool:
    """True when W&B can log in: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    if os.path.exists(netrc):
        with open(netrc) as f:
            return "api.wandb.ai" in f.read()
    return False


def wandb_logger(offline: bool | None = None, resume: bool = False, **kwargs):
    """Lightning's WandbLogger, offline when no account is configured.

    Offline runs are written under ``save_dir/wandb/offline-run-*`` and can be uploaded
    later with ``wandb sync DIR``. ``WANDB_MODE`` from the environment wins when set.
    The run's W&B id is kept in ``save_dir/descentlab-wandb-id``; ``resume=True`` (set
    by ``train.run`` for ``ckpt_path=...``) continues that W&B run instead of a new one.
    """
    from lightning.pytorch.loggers import WandbLogger  # wandb imported only when chosen

    if offline is None:
        offline = os.environ.get("WANDB_MODE") in ("offline", "dryrun") or (
            os.environ.get("WANDB_MODE") != "online" and not wandb_has_credentials()
        )
    save_dir = Path(kwargs.get("save_dir", "."))
    save_dir.mkdir(parents=True, exist_ok=True)
    id_file = save_dir / WANDB_ID_FILE
    if resume and id_file.is_file() and not kwargs.get("id"):
        kwargs.update(id=id_file.read_text().strip(), resume="allow")
    if not kwargs.get("id"):
        kwargs["id"] = secrets.token_hex(4)  # W&B run ids: lowercase letters and digits
    id_file.write_text(kwargs["id"] + "\n")
    return WandbLogger(offline=offline, **kwargs)


def resume_kwargs(target: str, global_step: int) -> dict[str, Any]:
    """What a logger built from ``_target_`` needs to continue a run resumed at ``global_step``."""
    if target == f"{__name__}.CSVLogger":
        return {"keep_below_step": global_step}
    if target.endswith("TensorBoardLogger"):
        # SummaryWriter(purge_step=s) hides the killed run's events at steps >= s
        return {"purge_step": global_step}
    if target == f"{__name__}.wandb_logger":
        return {"resume": True}
    return {}
