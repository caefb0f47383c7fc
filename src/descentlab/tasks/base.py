"""The task contract: what a model learns from its targets, and how that is measured.

A task owns five things, so that the LightningModule, the data, the callbacks and the
report need not know which kind of model they train:

- the loss ℓ(ŷ, y) (:meth:`Task.loss`; with ``model.net.ops=optable`` built from the
  lecture's op table, :meth:`Task.op_loss`),
- the metrics it logs per epoch (:meth:`Task.new_metrics`, names in :attr:`Task.metric_names`,
  which way each is better in :data:`descentlab.rules.METRIC_MODES`),
- what targets it reads and how they are checked (:attr:`Task.targets`,
  :meth:`Task.check_targets`),
- how a prediction is made from the network's output (:meth:`Task.predict`),
- the default ``monitor``/``mode`` of ``best.ckpt`` and early stopping and the ``objective``
  handed to sweepers and used by the report to rank runs.

Adding a task is one subclass and one ``configs/task/NAME.yaml`` (see the README's
"Extending the template").
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from torch import Tensor, nn

from descentlab.errors import DataError, ParameterError
from descentlab.rules import METRIC_MODES, TASK, checked

STAGES = ("train", "val", "test")
BETTER = {"min": "lower", "max": "higher"}


class Task:
    """Base class; subclasses set the class attributes and implement the methods.

    Args:
        outputs: the network's output width (``model.net.num_outputs`` follows it).
        monitor: the metric ``best.ckpt`` and early stopping follow (``val/...`` or ``train/...``).
        mode: ``min`` or ``max``: which way ``monitor`` is better.
        objective: the final metric a sweeper optimizes and the report ranks by
            (default: the task's :attr:`default_objective`).
    """

    name: ClassVar[str]
    targets: ClassVar[str]  # "classes" (integer labels) or "values" (real numbers)
    metric_names: ClassVar[tuple[str, ...]]  # logged as train/NAME, val/NAME, test/NAME
    default_objective: ClassVar[str] = "val/loss"

    @checked
    def __init__(
        self,
        outputs: Annotated[int | None, TASK["outputs"]] = None,
        monitor: str = "val/loss",
        mode: Annotated[str, TASK["mode"]] = "min",
        objective: str | None = None,
    ):
        self.outputs = outputs
        objective = objective or self.default_objective
        if monitor not in self.monitorable():
            raise ParameterError(
                "monitor",
                monitor,
                f"a metric the {self.name} task logs while training: "
                + ", ".join(self.monitorable()),
            )
        if objective not in self.logged():
            raise ParameterError(
                "objective",
                objective,
                f"a metric the {self.name} task logs: " + ", ".join(self.logged()),
            )
        direction = self.mode_of(monitor)
        if mode != direction:
            raise ParameterError(
                "mode", mode, f"{direction} ({BETTER[direction]} {monitor} is better)"
            )
        self.monitor, self.mode, self.objective = monitor, mode, objective

    # -- names --------------------------------------------------------------------------
    def logged(self) -> list[str]:
        """Every ``stage/metric`` the task logs, plus ``gap/loss`` (val − train loss)."""
        names = [f"{stage}/{metric}" for stage in STAGES for metric in self.metric_names]
        return [*names, "gap/loss"]

    def monitorable(self) -> list[str]:
        """What checkpoints and early stopping can follow: ``train/*``, ``val/*``, ``gap/loss``
        (``test/*`` comes after training)."""
        return [m for m in self.logged() if not m.startswith("test/")]

    def mode_of(self, metric: str) -> str:
        """``min`` or ``max`` for one of :meth:`logged`."""
        return "min" if metric == "gap/loss" else METRIC_MODES[metric.rsplit("/", 1)[-1]]

    # -- subclasses ---------------------------------------------------------------------
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The batch's mean loss, with torch's own operations."""
        raise NotImplementedError

    def op_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The same loss built from the op table (``model.net.ops=optable``)."""
        raise NotImplementedError

    def new_metrics(self) -> nn.Module:
        """A fresh epoch accumulator: ``update(loss, output, target)``, ``compute() -> {name:
        value}``, ``reset()``, ``running() -> {name: float}`` (see :mod:`descentlab.tasks.metrics`)."""
        raise NotImplementedError

    def predict(self, output: Tensor) -> Tensor:
        """What ``predict_step`` returns for the network's output."""
        raise NotImplementedError

    def check_targets(self, y: Tensor, where: str, training: bool = True) -> None:
        """Refuse targets this task cannot learn from, in one line naming ``where``
        (``training``: the split the model learns from, held to more, e.g. two classes)."""
        raise NotImplementedError

    # -- data ---------------------------------------------------------------------------
    def data_outputs(self, datamodule) -> int | None:
        """The output width the data call for (classes, or target values per sample)."""
        if self.targets == "classes":
            return getattr(datamodule, "num_classes", None)
        return getattr(datamodule, "target_size", None)

    def check_data(self, datamodule) -> None:
        """Before the model is built: the data hold the kind of targets this task reads."""
        kind = getattr(datamodule, "targets", "classes")
        if kind != self.targets:
            path = getattr(datamodule, "path", None)  # data=arrays: name the file
            source = f"{type(datamodule).__name__} ({path})" if path else type(datamodule).__name__
            have = "class labels" if kind == "classes" else "real-valued targets"
            raise DataError(f"task={self.name} {self.needs()}; {source} has {have}{self.hint()}")

    def needs(self) -> str:
        return "needs class labels" if self.targets == "classes" else "needs real-valued targets"

    def hint(self) -> str:
        """How to get data this task can read (the end of a refusal)."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(outputs={self.outputs}, monitor={self.monitor!r})"


def finite_or_refuse(y: Tensor, where: str) -> None:
    """Targets hold no NaN or inf (a NaN target makes every loss NaN from the first step)."""
    import torch

    if y.is_floating_point():
        finite = torch.isfinite(y.reshape(len(y), -1)).all(1)
        if not bool(finite.all()):
            rows = (~finite).nonzero().flatten()
            raise DataError(
                f"{where}: the targets hold NaN or inf in {len(rows)} rows "
                f"(the first: row {int(rows[0])})"
            )
