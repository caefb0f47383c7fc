"""The LightningModule: a network, its loss, the λ‖w‖² penalty, metrics, optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from descentlab.models.metrics import EpochLossAccuracy

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
STAGES = ("train", "val", "test")


def squared_weight_norm(module: nn.Module) -> Tensor:
    """‖w‖² summed over weight matrices and kernels (``ndim >= 2``).

    Biases and normalization scales/shifts (1-D) are left out: penalizing them does
    not reduce the model's capacity to fit, it only shifts its outputs.
    """
    squares = [p.pow(2).sum() for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    if not squares:
        return torch.zeros(())
    return torch.stack(squares).sum()


class Classifier(L.LightningModule):
    """Trains ``net`` to minimize cross-entropy, plus ``λ‖w‖²`` when ``l2_penalty = λ > 0``.

    The training objective is the lecture's regularized loss

        L(w) = (1/|S|) Σ_{i∈S} ℓ(y_i, f_w(x_i)) + λ ‖w‖²

    where ℓ is cross-entropy on the logits ``f_w(x)`` and ‖w‖² runs over weights only
    (:func:`squared_weight_norm`). The penalty's gradient is 2λw, on weights. That is not
    what an optimizer's ``weight_decay`` means (torch's: g ← ∇L + λw on every parameter,
    biases included): with plain SGD, ``l2_penalty=λ`` follows the same trajectory as
    ``torch.optim.SGD(weight_decay=2λ)`` applied to the weights only. ``train/loss`` logs
    the data term and ``train/penalty`` the λ‖w‖² term, each averaged over the epoch.

    Args:
        net: the network; outputs logits.
        optimizer: a factory ``params -> torch.optim.Optimizer`` (Hydra ``_partial_``);
            ``None`` for a module that is only evaluated.
        init: an initializer applied to ``net`` here, so that the module is ready to
            train as soon as Hydra has built it (``None`` keeps PyTorch's own init).
        l2_penalty: λ of the penalty λ‖w‖² added to the loss (weights only).
        scheduler: optional factory ``optimizer -> LRScheduler`` stepped each epoch.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        init: Callable[[nn.Module], None] | None = None,
        l2_penalty: float = 0.0,
        scheduler: Callable | None = None,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.l2_penalty = float(l2_penalty)
        if init is not None:
            # a pretrained backbone keeps its weights: only a new head is initialized
            init(net.head if hasattr(net, "backbone") else net)
        num_classes = num_classes or getattr(net, "num_classes", None)
        if num_classes is None:
            raise ValueError("Classifier needs num_classes (or a net with .num_classes)")
        self.num_classes = int(num_classes)
        self.loss_fn = self._make_loss(net)
        # One metric per stage: it accumulates on the device and syncs across ranks once
        # per epoch, so the training loop never waits on the host.
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", EpochLossAccuracy())
        # nan_strategy="disable": no per-update NaN check (a host read per step)
        self.penalty = MeanMetric(nan_strategy="disable")
        self._last_val_loss: tuple[int, Tensor] | None = None
        self.save_hyperparameters(ignore=["net", "optimizer", "init", "scheduler"])

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **kwargs):
        """Lightning's ``load_from_checkpoint``; ``net`` and ``optimizer`` default to the ones
        the checkpoint's run was configured with (its recorded ``model`` config, rebuilt with
        Hydra's ``instantiate``), so ``Classifier.load_from_checkpoint(path)`` needs nothing
        else. Any fsspec URL works; the file is read with ``weights_only=True``."""
        from descentlab.checkpoints import load_checkpoint
        from descentlab.loading import build_net, build_optimizer, model_config

        if "net" not in kwargs:
            config = model_config(load_checkpoint(checkpoint_path), checkpoint_path)
            kwargs["net"] = build_net(config["net"])
            kwargs.setdefault("optimizer", build_optimizer(config.get("optimizer")))
        return super().load_from_checkpoint(
            checkpoint_path, map_location=map_location or "cpu", weights_only=True, **kwargs
        )

    @staticmethod
    def _make_loss(net: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
        if getattr(net, "ops", "native") == "optable":
            from descentlab.autograd.layers import op_cross_entropy

            return op_cross_entropy
        return nn.functional.cross_entropy

    @property
    def backbone(self) -> nn.Module | None:
        """The feature extractor, for Lightning's ``BackboneFinetuning`` (gradual unfreezing)."""
        return getattr(self.net, "backbone", None)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, stage: str, batch) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        # Accumulate on the device only; the epoch's values are logged once, at its end
        # (a self.log per step costs Lightning ~2 ms of bookkeeping, more than a small step).
        getattr(self, f"{stage}_metrics").update(loss, logits, y)
        return loss

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        """Compute (synced across ranks), log and reset the stage's epoch metrics."""
        metric = getattr(self, f"{stage}_metrics")
        values = {f"{stage}/{name}": value for name, value in metric.compute().items()}
        self.log_dict(values, prog_bar=stage != "test", sync_dist=False)  # compute() already synced
        metric.reset()
        return values

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss = self._step("train", batch)
        if self.l2_penalty > 0:
            penalty = self.l2_penalty * squared_weight_norm(self.net)
            self.penalty.update(penalty.detach())
            loss = loss + penalty
        return loss

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        return self._step("val", batch)

    def test_step(self, batch, batch_idx: int) -> Tensor:
        return self._step("test", batch)

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return nn.Softmax(dim=-1)(self(x))

    # -- epoch ends: metrics and the generalization gap -------------------------------
    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if not self.trainer.sanity_checking:
            self._last_val_loss = (self.current_epoch, values["val/loss"])

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_train_epoch_end(self) -> None:
        values = self._log_epoch("train")
        if self.l2_penalty > 0:
            self.log("train/penalty", self.penalty.compute())
            self.penalty.reset()
        # val/loss − train/loss for the epoch just finished (validation runs inside it).
        if self._last_val_loss is not None and self._last_val_loss[0] == self.current_epoch:
            self.log("gap/loss", self._last_val_loss[1] - values["train/loss"])

    # -- a mid-epoch checkpoint carries the epoch's running sums ----------------------
    RUNNING = ("train_metrics", "penalty")  # accumulated over a training epoch
    CHECKPOINT_KEY = "descentlab_running_metrics"

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Save the training epoch's running sums, summed over ranks, so that a run resumed
        mid-epoch reports that epoch's ``train/*`` over all its batches, not only those
        after the resume. (Every rank calls this hook; only rank 0 writes the file.)"""
        saved = {}
        for name in self.RUNNING:
            metric = getattr(self, name)
            with metric.sync_context(should_sync=True, should_unsync=True):
                saved[name] = {k: v.detach().clone() for k, v in metric.metric_state.items()
                               if isinstance(v, Tensor)}  # fmt: skip
        checkpoint[self.CHECKPOINT_KEY] = saved

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Put the saved sums back on rank 0 (the others start from 0: the sums are global)."""
        saved = checkpoint.get(self.CHECKPOINT_KEY)
        try:
            rank = self.trainer.global_rank
        except RuntimeError:  # not attached to a trainer: a plain load
            rank = 0
        if not saved or rank != 0:
            return
        for name, states in saved.items():
            metric = getattr(self, name, None)
            for key, value in states.items():
                if metric is not None and hasattr(metric, key):
                    setattr(metric, key, value.to(getattr(metric, key).device))

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("Classifier was built without an optimizer: it cannot be trained")
        # frozen parameters (model.net.freeze) are left out; BackboneFinetuning adds them later
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
