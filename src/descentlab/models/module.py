"""The LightningModule: a network, a task (its loss and metrics), the λ‖w‖² penalty, the optimizer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from typing import Annotated

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn
from torchmetrics import MeanMetric

from descentlab.models.penalties import L2Penalty
from descentlab.optim.fused import build_optimizer
from descentlab.rules import MODEL, checked
from descentlab.tasks import Classification, Task

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
STAGES = ("train", "val", "test")
log = logging.getLogger(__name__)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def squared_weight_norm(module: nn.Module) -> Tensor:
    """‖w‖² summed over weight matrices and kernels (``ndim >= 2``; biases left out)."""
    return L2Penalty(1.0)(module)


class TaskModule(L.LightningModule):
    """Trains ``net`` on a ``task`` (:mod:`descentlab.tasks`): the task's loss plus penalty terms.

    The training objective is the lecture's regularized loss

        L(w) = (1/|S|) Σ_{i∈S} ℓ(y_i, f_w(x_i)) + Σ_k R_k(w)

    where ℓ is the task's loss on the network's output ``f_w(x)`` (cross-entropy for
    classification, ½‖f_w(x) − y‖² for regression, ...) and each R_k is a term of
    ``penalties`` (:mod:`descentlab.models.penalties`), e.g. the lecture's λ‖w‖² when
    ``l2_penalty = λ > 0`` (weights only; gradient 2λw). That is not what an optimizer's
    ``weight_decay`` means (torch's: g ← ∇L + λw on every parameter, biases included): with
    plain SGD, ``l2_penalty=λ`` follows the same trajectory as
    ``torch.optim.SGD(weight_decay=2λ)`` applied to the weights only. ``train/loss`` logs
    the data term and ``train/penalty`` the sum of the terms, each averaged over the epoch.

    Args:
        net: the network; its output is what ``task`` reads (logits, values, one z).
        task: what is learned and measured (loss, metrics, predictions); default
            classification with cross-entropy (``task=...`` in the config).
        num_classes: ignored; checkpoints written before tasks existed record it (the
            task's ``outputs`` say it now).
        optimizer: a factory ``params -> torch.optim.Optimizer`` (Hydra ``_partial_``);
            ``None`` for a module that is only evaluated.
        init: an initializer applied to ``net`` here, so that the module is ready to
            train as soon as Hydra has built it (``None`` keeps PyTorch's own init).
        l2_penalty: λ of the penalty λ‖w‖² added to the loss (weights only).
        penalties: more terms ``net -> Tensor`` added to the loss, by name
            (``model.penalties.l1`` from ``regularizer=l1``).
        scheduler: optional factory ``optimizer -> LRScheduler`` stepped each epoch.
        backbone_lr_ratio: for a net with a ``backbone`` (transfer learning): the backbone's
            parameter group trains at this times the optimizer's learning rate, the new
            head at the full rate (pretrained features need small steps, a new head big ones).
        probe_epochs: linear probe, then fine-tune (LP-FT): for this many epochs only the
            head trains (a frozen, pretrained backbone), then everything does. A head fitted
            first sends the backbone useful gradients instead of a random head's noise.
        compile: ``torch.compile`` the network (``true``: mode ``default``, or a mode such as
            ``max-autotune``). Compiled in place (``nn.Module.compile``), so checkpoints keep
            the eager module's keys (no ``_orig_mod.``) and load into either. Compilation
            happens on the first training and the first validation batch; the first training
            step's time is logged once.
        bn_stats: ``train`` (BatchNorm running statistics follow the new data) or ``frozen``
            (the backbone's BatchNorm layers stay in eval mode and keep the pretrained
            statistics: with few images per batch, batch statistics are noise). During the
            probe epochs they are always frozen.
        A net's ``fresh_layers`` (``model.net.fresh_layers``, kept at random init) are part of
        the backbone here (its learning rate, frozen during the probe), except that
        ``bn_stats=frozen`` leaves their BatchNorm statistics training: they have no
        pretrained ones to keep.
    """

    @checked
    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        init: Callable[[nn.Module], None] | None = None,
        l2_penalty: Annotated[float, MODEL["l2_penalty"]] = 0.0,
        scheduler: Callable | None = None,
        task: Task | None = None,
        num_classes: int | None = None,
        backbone_lr_ratio: Annotated[float, MODEL["backbone_lr_ratio"]] = 1.0,
        probe_epochs: Annotated[int, MODEL["probe_epochs"]] = 0,
        bn_stats: Annotated[str, MODEL["bn_stats"]] = "train",
        penalties: Mapping[str, Callable[[nn.Module], Tensor]] | None = None,
        compile: Annotated[bool | str, MODEL["compile"]] = False,  # noqa: A002 - torch's word
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.l2_penalty = float(l2_penalty)
        self.penalty_terms = self._penalty_terms(self.l2_penalty, penalties or {})
        self._warned_single_sample_batch = False
        self.backbone_lr_ratio, self.probe_epochs, self.bn_stats = (
            float(backbone_lr_ratio),
            int(probe_epochs),
            bn_stats,
        )
        if init is not None:
            # a pretrained backbone keeps its weights: only a new head is initialized
            init(net.head if hasattr(net, "backbone") else net)
        self.compile_mode = ("default" if compile is True else compile) or None
        if self.compile_mode:
            # in place: the state dict keeps its keys, so resume and load_from_checkpoint of a
            # compiled run work with or without compile (torch.compile(net) would add _orig_mod.)
            self.net.compile(mode=self.compile_mode)
        self._first_step_started: float | None = None
        self.task = task or Classification(outputs=getattr(net, "num_outputs", None))
        self.loss_fn = (
            self.task.op_loss if getattr(net, "ops", "native") == "optable" else self.task.loss
        )
        input_shape = getattr(net, "input_shape", None)
        if input_shape is not None:
            # one sample: the model summary then shows each layer's output size and the
            # forward pass's FLOPs per sample (else "Total FLOPs: 0")
            self.example_input_array = torch.zeros(1, *input_shape)
        # One metric per stage: it accumulates on the device and syncs across ranks once
        # per epoch, so the training loop never waits on the host.
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", self.task.new_metrics())
        # nan_strategy="disable": no per-update NaN check (a host read per step)
        self.penalty = MeanMetric(nan_strategy="disable")
        self._last_val_loss: tuple[int, Tensor] | None = None
        self.save_hyperparameters(
            ignore=["net", "optimizer", "init", "scheduler", "penalties", "task", "num_classes"]
        )

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **kwargs):
        """Lightning's ``load_from_checkpoint``; ``net`` and ``optimizer`` default to the ones
        the checkpoint's run was configured with (its recorded ``model`` config, rebuilt with
        Hydra's ``instantiate``), and so does ``task``, so ``TaskModule.load_from_checkpoint(path)`` needs nothing
        else. Any fsspec URL works; the file is read with ``weights_only=True``."""
        from descentlab.models.rebuild import build_net, build_optimizer, build_task, model_config
        from descentlab.torchfile import load_checkpoint

        if "net" not in kwargs:
            config = model_config(load_checkpoint(checkpoint_path), checkpoint_path)
            kwargs["net"] = build_net(config["net"])
            kwargs.setdefault("optimizer", build_optimizer(config.get("optimizer")))
            kwargs.setdefault("task", build_task(config.get("task")))
        # a run trained with model.compile loads eager: the weights are the same, and predict,
        # eval and export need no compilation (onnx cannot export a compiled forward)
        kwargs.setdefault("compile", False)
        return super().load_from_checkpoint(
            checkpoint_path, map_location=map_location or "cpu", weights_only=True, **kwargs
        )

    @staticmethod
    def _penalty_terms(l2_penalty: float, penalties: Mapping) -> dict[str, Callable]:
        from descentlab.errors import ParameterError

        if not isinstance(penalties, Mapping):
            raise ParameterError(
                "penalties",
                penalties,
                "a mapping of name to penalty config, e.g. regularizer=l1",
            )
        terms = dict(penalties)
        for name, term in terms.items():
            if not callable(term):
                raise ParameterError(
                    f"penalties.{name}",
                    term,
                    "a penalty config with a _target_ (see regularizer=l1)",
                )
        if l2_penalty > 0:
            terms["l2"] = L2Penalty(l2_penalty)
        return terms

    @property
    def backbone(self) -> nn.Module | None:
        """The feature extractor, for Lightning's ``BackboneFinetuning`` (gradual unfreezing)."""
        return getattr(self.net, "backbone", None)

    def _pretrained_modules(self) -> list[nn.Module]:
        """The backbone's modules that hold pretrained weights and statistics: all of them but
        a net's ``fresh_layers`` (randomly initialized: no statistics worth keeping)."""
        if hasattr(self.net, "pretrained_modules"):
            return self.net.pretrained_modules()
        return list(self.backbone.modules())

    def forward(self, x: Tensor) -> Tensor:
        if x.is_floating_point() and x.dtype != self.dtype:
            # trainer.precision=64-true makes the weights float64; the data stay float32
            x = x.to(self.dtype)
        return self.net(x)

    # -- transfer learning: linear probe, then fine-tune; BatchNorm statistics -----------
    def _probing(self) -> bool:
        return self._trainer is not None and self.current_epoch < self.probe_epochs

    def on_train_epoch_start(self) -> None:
        backbone = self.backbone
        if backbone is None:
            return
        if self.probe_epochs > 0 and not getattr(self.net, "frozen", False):
            # grads of a frozen backbone stay None, so the optimizer leaves it alone (and keeps
            # no state for it) until the probe ends; its parameter group exists from the start,
            # so a resumed run restores the same optimizer
            backbone.requires_grad_(not self._probing())
        # Lightning never calls train() itself (it restores each module's mode after
        # validation), so the BatchNorm modes are set here, each epoch (see train)
        self.train(True)

    def train(self, mode: bool = True):
        """Training mode, except the backbone's BatchNorm layers while their statistics are frozen."""
        super().train(mode)
        backbone = self.backbone
        if mode and backbone is not None and (self.bn_stats == "frozen" or self._probing()):
            for module in self._pretrained_modules():
                if isinstance(module, BATCH_NORMS):
                    module.eval()
        return self

    def _normalizes_with_batch_statistics(self) -> bool:
        return any(isinstance(m, BATCH_NORMS) and m.training for m in self.net.modules())

    def _step(self, stage: str, batch) -> Tensor:
        x, y = batch
        output = self(x)
        loss = self.loss_fn(output, y)
        # Accumulate on the device only; the epoch's values are logged once, at its end
        # (a self.log per step costs Lightning ~2 ms of bookkeeping, more than a small step).
        getattr(self, f"{stage}_metrics").update(loss, output, y)
        return loss

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        """Compute (synced across ranks), log and reset the stage's epoch metrics."""
        metric = getattr(self, f"{stage}_metrics")
        if stage != "train" and int(metric.count) == 0:
            # every batch was empty: data.on_bad_image=skip dropped every file of the split
            # that a worker tried to decode (equal on all ranks: they read the same files)
            from descentlab.errors import DataError

            raise DataError(
                f"the {stage} split gave no readable image: data.on_bad_image=skip dropped "
                "every one (truncated or corrupt files)"
            )
        values = {f"{stage}/{name}": value for name, value in metric.compute().items()}
        self.log_dict(values, prog_bar=stage != "test", sync_dist=False)  # compute() already synced
        metric.reset()
        return values

    def training_step(self, batch, batch_idx: int) -> Tensor | None:
        if len(batch[1]) == 0:  # every image of the batch was unreadable (on_bad_image=skip)
            if self.trainer.world_size > 1:
                # every DDP rank must take part in the gradient all-reduce (Lightning refuses
                # None there, and a rank that skipped would leave the others waiting): a loss
                # of 0 that touches every trainable parameter adds zeros as this rank's share
                return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return None  # one process: Lightning skips the optimizer step
        if len(batch[0]) == 1 and self._normalizes_with_batch_statistics():
            # BatchNorm cannot normalize one sample by its own statistics (torch raises): this
            # batch is normalized with the running statistics instead, and trains as usual
            # (so every DDP rank still steps together).
            if not self._warned_single_sample_batch:
                rank_zero_only(log.warning)(
                    "a training batch of 1 sample (the train split's size leaves 1 over "
                    "data.batch_size): BatchNorm normalizes it with its running statistics"
                )
                self._warned_single_sample_batch = True
            with self._batch_norm_in_eval_mode():
                return self._training_loss(batch)
        return self._training_loss(batch)

    @contextmanager
    def _batch_norm_in_eval_mode(self):
        training = [m for m in self.net.modules() if isinstance(m, BATCH_NORMS) and m.training]
        for module in training:
            module.eval()
        try:
            yield
        finally:
            for module in training:
                module.train()

    def on_fit_start(self) -> None:
        batch_size = getattr(self.trainer.datamodule, "batch_size", None)
        self.train(True)  # the modes training will use (bn_stats=frozen: backbone BN in eval)
        if batch_size == 1 and self._normalizes_with_batch_statistics():
            from descentlab.errors import ConfigError

            raise ConfigError(
                "data.batch_size",
                1,
                "at least 2 for a net with BatchNorm layers, which "
                "normalize each batch by its own statistics (or model.bn_stats=frozen)",
            )

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.compile_mode and self._first_step_started is None:
            self._first_step_started = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.compile_mode and self._first_step_started and self._first_step_started > 0:
            seconds = time.perf_counter() - self._first_step_started
            self._first_step_started = -1.0  # reported: once per run
            rank_zero_only(log.info)(
                "torch.compile (mode %s): the first training step took %.1f s, compiling the "
                "forward and backward graphs; validation compiles its own on its first batch",
                self.compile_mode,
                seconds,
            )

    def _training_loss(self, batch) -> Tensor:
        loss = self._step("train", batch)
        if self.penalty_terms:
            penalty = sum(term(self.net) for term in self.penalty_terms.values())
            self.penalty.update(penalty.detach())
            loss = loss + penalty
        return loss

    def validation_step(self, batch, batch_idx: int) -> Tensor | None:
        return None if len(batch[1]) == 0 else self._step("val", batch)

    def test_step(self, batch, batch_idx: int) -> Tensor | None:
        return None if len(batch[1]) == 0 else self._step("test", batch)

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.task.predict(self(x))

    def running_train_metrics(self) -> dict[str, float]:
        """The current training epoch's ``train/loss`` (and ``train/acc`` for classification)
        so far, on this rank (for a progress bar; a host read, so not called every step).
        ``{}`` before a batch."""
        return {f"train/{k}": v for k, v in self.train_metrics.running().items()}

    # -- epoch ends: metrics and the generalization gap -------------------------------
    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if not self.trainer.sanity_checking:
            self._last_val_loss = (self.current_epoch, values["val/loss"])

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_train_epoch_end(self) -> None:
        values = self._log_epoch("train")
        if self.penalty_terms:
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
        for name, metric in self._running_metrics():
            with metric.sync_context(should_sync=True, should_unsync=True):
                saved[name] = {
                    k: v.detach().clone()
                    for k, v in metric.metric_state.items()
                    # (a list state, AUROC's scores, synced into one tensor, is saved but not
                    # put back: on_load_checkpoint restores tensor states only)
                    if isinstance(v, Tensor)
                }
        checkpoint[self.CHECKPOINT_KEY] = saved

    def _running_metrics(self):
        """``(name, metric)`` of every torchmetrics Metric accumulated over a training epoch,
        nested ones included (a task's ``train_metrics.extra.mse``)."""
        from torchmetrics import Metric

        for root in self.RUNNING:
            for sub, metric in getattr(self, root).named_modules(prefix=root):
                if isinstance(metric, Metric):
                    yield sub, metric

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Put the saved sums back on rank 0 (the others start from 0: the sums are global)."""
        saved = checkpoint.get(self.CHECKPOINT_KEY)
        try:
            rank = self.trainer.global_rank
        except RuntimeError:  # not attached to a trainer: a plain load
            rank = 0
        if not saved or rank != 0:
            return
        metrics = dict(self._running_metrics())
        for name, states in saved.items():
            metric = metrics.get(name)
            for key, value in states.items():
                current = getattr(metric, key, None) if metric is not None else None
                if isinstance(current, Tensor):  # a list state (AUROC's scores) is not restored
                    setattr(metric, key, value.to(current.device))

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("TaskModule was built without an optimizer: it cannot be trained")
        # frozen parameters (model.net.freeze) are left out; BackboneFinetuning adds them later
        trainable = [p for p in self.parameters() if p.requires_grad]
        backbone = (
            {id(p) for p in self.backbone.parameters()} if self.backbone is not None else set()
        )
        body = [p for p in trainable if id(p) in backbone]
        if body and self.backbone_lr_ratio != 1.0:
            # two parameter groups: the head at the optimizer's lr, the backbone at a fraction
            head = [p for p in trainable if id(p) not in backbone]
            optimizer = build_optimizer(
                self.optimizer_factory, [{"params": head}, {"params": body}]
            )
            optimizer.param_groups[1]["lr"] *= self.backbone_lr_ratio
        else:
            optimizer = build_optimizer(self.optimizer_factory, trainable)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
