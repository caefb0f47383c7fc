"""Epoch loss and accuracy, accumulated with a handful of tensor ops per batch."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class EpochLossAccuracy(Metric):
    """Sample-weighted mean loss and top-1 accuracy over an epoch.

    For batches b of n_b samples with mean loss ℓ_b and c_b correct predictions:

        loss = Σ_b n_b·ℓ_b / Σ_b n_b,      acc = Σ_b c_b / Σ_b n_b

    i.e. what ``MeanMetric().update(ℓ_b, weight=n_b)`` and
    ``MulticlassAccuracy(average="micro")`` give (the tests check both). It keeps three
    running sums, reduced across ranks by torchmetrics' ``dist_reduce_fx="sum"``.

    Why not those two metrics: their per-step updates (argument handling, broadcasting,
    stat-score bookkeeping, two metric wrappers) took ~180 µs per step on 2 CPU cores
    against ~60 µs for these three in-place sums (timeit, same process), a measurable
    share of a small MLP's ~1.8 ms step. No host reads either way.
    """

    full_state_update = False
    higher_is_better = None

    loss_sum: Tensor
    correct: Tensor
    count: Tensor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("loss_sum", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, loss: Tensor, logits: Tensor, target: Tensor) -> None:
        """Add one batch: its mean ``loss``, its ``logits`` (N, C) and labels ``target`` (N,)."""
        n = target.numel()
        self.loss_sum += loss.detach() * n
        self.correct += (logits.detach().argmax(dim=-1) == target).sum()
        self.count += n

    def compute(self) -> dict[str, Tensor]:
        # no batches: 0/0 = nan, not a made-up 0
        return {"loss": self.loss_sum / self.count, "acc": self.correct / self.count}

    def running(self) -> dict[str, float]:
        """The epoch's loss and accuracy so far on this rank (a host read: for a progress bar)."""
        count = int(self.count)
        if count == 0:
            return {}
        return {"loss": float(self.loss_sum) / count, "acc": int(self.correct) / count}
