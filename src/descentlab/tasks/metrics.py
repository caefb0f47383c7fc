"""Epoch accumulators: a sample-weighted mean loss, plus torchmetrics' metrics of the task.

Each accumulates on the device and syncs across ranks once, in ``compute()``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

# (network output, targets) -> (predictions, targets) in the form the metrics read
Prepare = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class EpochLoss(Metric):
    """Sample-weighted mean loss over an epoch, and any torchmetrics metrics beside it.

    For batches b of n_b samples with mean loss ℓ_b: ``loss = Σ_b n_b·ℓ_b / Σ_b n_b``
    (what ``MeanMetric().update(ℓ_b, weight=n_b)`` gives). ``metrics`` (e.g. torchmetrics'
    ``MeanSquaredError``) are updated with ``prepare(output, target)`` and computed over
    the whole epoch, so ``val/r2`` is the R² of the split, not a mean of batch R²s.
    """

    full_state_update = False
    higher_is_better = None

    loss_sum: Tensor
    count: Tensor

    def __init__(self, metrics: dict[str, Metric] | None = None, prepare: Prepare | None = None):
        super().__init__()
        self.add_state("loss_sum", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.extra = MetricCollection(metrics or {})
        self.prepare = prepare or (lambda output, target: (output, target))

    def update(self, loss: Tensor, output: Tensor, target: Tensor) -> None:
        """Add one batch: its mean ``loss``, the network's ``output`` and the ``target``."""
        n = len(target)
        self.loss_sum += loss.detach() * n
        self.count += n
        if len(self.extra):
            self.extra.update(*self.prepare(output.detach(), target))

    def compute(self) -> dict[str, Tensor]:
        # no batches: 0/0 = nan, not a made-up 0
        values = {"loss": self.loss_sum / self.count}
        if len(self.extra):
            values.update(self.extra.compute())
        return values

    def reset(self) -> None:
        super().reset()
        self.extra.reset()

    def running(self) -> dict[str, float]:
        """The epoch's mean loss so far on this rank (a host read: for a progress bar)."""
        count = int(self.count)
        return {"loss": float(self.loss_sum) / count} if count else {}
