"""Regression: real-valued targets of any shape [N, …], the lecture's squared loss."""

from __future__ import annotations

from torch import Tensor, nn

from descentlab.errors import DataError
from descentlab.tasks.base import Task, finite_or_refuse
from descentlab.tasks.metrics import EpochLoss


class Regression(Task):
    """The lecture's ℒ = ½‖f(x) − y‖², averaged over the batch:

        loss = (1/n) Σ_i ½ Σ_j (ŷ_ij − y_ij)²

    summed over the k target values of a sample, averaged over the n samples. For k = 1
    that is ½·``torch.nn.MSELoss()``; in general (k/2)·``MSELoss()`` (which averages over
    all n·k values). The ½ makes the gradient ∂ℓ/∂ŷ = (ŷ − y)/n with no factor 2.

    Metrics (torchmetrics', over the whole split): ``mse`` = mean of (ŷ − y)² over all
    values, ``mae`` = mean of |ŷ − y|, ``r2`` = 1 − Σ(y − ŷ)²/Σ(y − ȳ)² (averaged over the
    k outputs). The targets ``y`` may have any shape [N, …]: the network's N×k output is
    read in that shape (k = the number of values per sample). ``predict`` gives ŷ.
    """

    name = "regression"
    targets = "values"
    metric_names = ("loss", "mse", "mae", "r2")

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        error = output.reshape(target.shape) - target
        return 0.5 * error.pow(2).reshape(len(target), -1).sum(1).mean()

    def op_loss(self, output: Tensor, target: Tensor) -> Tensor:
        from descentlab.autograd import ops

        error = ops.sub(output.reshape(target.shape), target).reshape(len(target), -1)
        return ops.mul(ops.mean(ops.sum(ops.pow(error, 2.0), dim=-1)), 0.5)

    def new_metrics(self) -> nn.Module:
        from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score

        def prepare(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
            n = len(target)
            k = target[0].numel() if n else 1
            shape = (n,) if k == 1 else (n, k)  # R2Score: one column per output
            return output.reshape(shape), target.reshape(shape)

        return EpochLoss(
            {"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()}, prepare
        )

    def predict(self, output: Tensor) -> Tensor:
        return output.squeeze(-1) if output.shape[-1] == 1 else output

    def check_targets(self, y: Tensor, where: str, training: bool = True) -> None:
        if len(y) < 2:  # R² (and a mean over the split) needs two samples
            raise DataError(
                f"{where}: {len(y)} sample(s); each split needs at least 2 (more data, or other "
                "data.val_fraction / data.test_fraction)"
            )
        if not y.is_floating_point():
            raise DataError(
                f"{where}: the targets are {y.dtype}, integer labels; task=regression needs "
                "real-valued targets (task=classification or task=binary for labels; store "
                "integer quantities as floats to regress them)"
            )
        finite_or_refuse(y, where)
        k = y[0].numel() if len(y) else 0
        if self.outputs is not None and k != self.outputs:
            raise DataError(
                f"{where}: {k} target values per sample, the network has {self.outputs} outputs"
            )

    def hint(self) -> str:
        return " (data=diabetes, data=teacher, or data=arrays with a float y)"
