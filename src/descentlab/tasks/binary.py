"""Binary classification: labels 0/1, one sigmoid output unit."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.errors import DataError, ParameterError
from descentlab.rules import TASK, checked
from descentlab.tasks.base import Task
from descentlab.tasks.classification import check_labels_of
from descentlab.tasks.metrics import EpochLoss


class Binary(Task):
    """One output z per sample, read as p = σ(z), the probability of label 1.

    ``loss``:
      - ``bce`` (default): the logistic loss −[y log σ(z) + (1 − y) log(1 − σ(z))], averaged
        over the batch: ``torch.nn.BCEWithLogitsLoss()`` (computed from z, stable for large |z|).
      - ``squared``: the lecture's worked example ½(y − σ(z))², averaged over the batch. With a
        net of no hidden layer on one input, z = wx + b and ``model.l2_penalty=λ`` adds λw²:
        exactly ℒ(w, b) = ½(y − σ(wx + b))² + λw² (``+experiment=worked_example``).

    Metrics: ``acc`` (σ(z) ≥ 0.5 counts as 1, torchmetrics' ``BinaryAccuracy``) and ``auroc``
    (``BinaryAUROC``, over the whole split). ``predict`` gives σ(z).
    """

    name = "binary"
    targets = "classes"
    metric_names = ("loss", "acc", "auroc")
    default_objective = "val/acc"

    @checked
    def __init__(
        self,
        loss: Annotated[str, TASK["loss"]] = "bce",
        outputs: Annotated[int | None, TASK["outputs"]] = 1,
        monitor: str = "val/loss",
        mode: Annotated[str, TASK["mode"]] = "min",
        objective: str | None = None,
    ):
        if outputs not in (None, 1):
            raise ParameterError("outputs", outputs, "1 (one sigmoid unit)")
        super().__init__(1, monitor, mode, objective)
        self.loss_name = loss

    @staticmethod
    def _logit(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return output.reshape(len(target)), target.to(output.dtype)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        z, y = self._logit(output, target)
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(z, y)
        return 0.5 * (y - torch.sigmoid(z)).pow(2).mean()

    def op_loss(self, output: Tensor, target: Tensor) -> Tensor:
        from descentlab.autograd import ops

        z, y = self._logit(output, target)
        if self.loss_name == "bce":
            # −log σ(z) for y = 1, −log(1 − σ(z)) for y = 0: the cross-entropy of the two
            # logits (0, z), since softmax(0, z) = (1 − σ(z), σ(z))
            from descentlab.autograd.layers import op_cross_entropy

            two = torch.stack([torch.zeros_like(z), z], dim=-1)
            return op_cross_entropy(two, target.long())
        return ops.mul(ops.mean(ops.pow(ops.sub(y, ops.sigmoid(z)), 2.0)), 0.5)

    def new_metrics(self) -> nn.Module:
        from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

        def prepare(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
            return torch.sigmoid(output.reshape(len(target))), target.long()

        return EpochLoss({"acc": BinaryAccuracy(), "auroc": BinaryAUROC()}, prepare)

    def predict(self, output: Tensor) -> Tensor:
        return torch.sigmoid(output.reshape(-1))  # -1, not len(): an export keeps N dynamic

    def check_targets(self, y: Tensor, where: str, training: bool = True) -> None:
        # both labels in every split: AUROC is undefined on one class (torchmetrics says 0)
        check_labels_of(y, where, 2, training=True)

    def data_outputs(self, datamodule) -> int | None:
        return 1 if getattr(datamodule, "num_classes", 2) == 2 else None

    def check_data(self, datamodule) -> None:
        super().check_data(datamodule)
        classes = getattr(datamodule, "num_classes", 2)
        if classes != 2:
            raise DataError(
                f"task=binary needs two classes; {type(datamodule).__name__} has {classes} "
                "(keep two: data.classes=[3,8])"
            )

    def hint(self) -> str:
        return (
            " (data=teacher data.kind=binary, or two classes of labelled data: data.classes=[3,8])"
        )
