"""The epoch metric against torchmetrics' own MeanMetric and MulticlassAccuracy."""

import math

import pytest
import torch
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from descentlab.tasks.accuracy import EpochLossAccuracy


def batches(sizes, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for n in sizes:
        logits = torch.randn(n, classes, generator=generator)
        target = torch.randint(0, classes, (n,), generator=generator)
        yield torch.nn.functional.cross_entropy(logits, target), logits, target


@pytest.mark.parametrize("sizes", [[64], [64, 64, 17], [1, 300, 5, 64]])
def test_equals_sample_weighted_mean_loss_and_micro_accuracy(sizes):
    ours = EpochLossAccuracy()
    mean_loss, accuracy = MeanMetric(), MulticlassAccuracy(7, average="micro")
    for loss, logits, target in batches(sizes):
        ours.update(loss, logits, target)
        mean_loss.update(loss, weight=len(target))
        accuracy.update(logits, target)
    values = ours.compute()
    assert values["loss"].item() == pytest.approx(mean_loss.compute().item(), rel=1e-6)
    assert values["acc"].item() == pytest.approx(accuracy.compute().item(), abs=1e-7)


def test_reset_starts_a_new_epoch_and_an_empty_epoch_is_nan():
    metric = EpochLossAccuracy()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert all(math.isnan(v.item()) for v in metric.compute().values())
    for loss, logits, target in batches([10, 10]):
        metric.update(loss, logits, target)
    metric.reset()
    loss, logits, target = next(batches([5], seed=1))
    metric.update(loss, logits, target)
    assert metric.compute()["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
    assert metric.count.item() == 5


def test_update_keeps_no_graph():
    weight = torch.randn(3, 4, requires_grad=True)
    logits = torch.randn(6, 3) @ weight
    target = torch.randint(0, 4, (6,))
    metric = EpochLossAccuracy()
    metric.update(torch.nn.functional.cross_entropy(logits, target), logits, target)
    assert not metric.loss_sum.requires_grad and metric.loss_sum.grad_fn is None
