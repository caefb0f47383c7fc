"""Classification: integer labels 0..K−1, cross-entropy on K logits, accuracy."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.errors import DataError
from descentlab.tasks.accuracy import EpochLossAccuracy
from descentlab.tasks.base import Task


def check_labels_of(y: Tensor, where: str, classes: int | None, training: bool = True) -> None:
    """Integer labels in 0..classes−1; a training split with at least two distinct ones (one
    class is nothing to learn: every model scores accuracy 1.0 on it). A small validation or
    test split may hold one class by chance."""
    if y.is_floating_point() or y.is_complex() or y.ndim != 1:
        raise DataError(
            f"{where}: the targets are {y.dtype} of shape {tuple(y.shape)}, not one integer "
            "label per sample (real-valued targets: task=regression)"
        )
    if len(y) == 0:
        raise DataError(f"{where}: the split is empty")
    low, high = int(y.min()), int(y.max())
    if low < 0 or (classes is not None and high >= classes):
        raise DataError(
            f"{where}: label {low if low < 0 else high} is outside 0..{(classes or 1) - 1}"
        )
    if training and low == high:
        raise DataError(
            f"{where}: every sample has label {low}; a classifier needs at least two classes"
        )


class Classification(Task):
    """ℓ(z, y) = −log softmax(z)_y averaged over the batch (``F.cross_entropy``); ``acc`` is
    the share of samples whose largest logit is the label. ``predict`` gives softmax(z).

    Defaults: ``best.ckpt`` and early stopping follow ``val/loss`` (min); sweeps and the
    report rank by ``val/acc``.
    """

    name = "classification"
    targets = "classes"
    metric_names = ("loss", "acc")
    default_objective = "val/acc"

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target)

    def op_loss(self, output: Tensor, target: Tensor) -> Tensor:
        from descentlab.autograd.layers import op_cross_entropy

        return op_cross_entropy(output, target)

    def new_metrics(self) -> nn.Module:
        return EpochLossAccuracy()

    def predict(self, output: Tensor) -> Tensor:
        return output.softmax(dim=-1)

    def check_targets(self, y: Tensor, where: str, training: bool = True) -> None:
        check_labels_of(y, where, self.outputs, training)

    def hint(self) -> str:
        return " (task=regression for real-valued targets)"
