"""The task contract (``task=classification|regression|binary``): each task's loss against
PyTorch's and the lecture's formulas, its metrics against torchmetrics', its op-table loss
against the native one, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score
from torch import nn
from torchmetrics.functional import mean_absolute_error, mean_squared_error
from torchmetrics.functional import r2_score as tm_r2
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from descentlab.autograd.worked_example import grads_by_hand, loss_by_hand
from descentlab.errors import DataError, ParameterError
from descentlab.tasks import Binary, Classification, Regression

GEN = torch.Generator().manual_seed(0)


def batches(n: int, size: int, *shape, integer: int | None = None):
    """``n`` batches of (output, target); targets labels in 0..integer−1 or real values."""
    for _ in range(n):
        output = torch.randn(size, *shape, generator=GEN, dtype=torch.float64)
        if integer is None:
            target = torch.randn(size, *shape, generator=GEN, dtype=torch.float64)
        else:
            target = torch.randint(0, integer, (size,), generator=GEN)
        yield output, target


# ------------------------------------------------------------------ regression
@pytest.mark.parametrize("shape", [(1,), (3,)])
def test_regression_loss_is_half_the_squared_norm_averaged_over_the_batch(shape):
    """½‖ŷ − y‖² per sample, mean over the batch: k/2 × torch's MSELoss (mean over n·k)."""
    task = Regression(outputs=shape[0])
    output, target = next(batches(1, 16, *shape))
    target = target.squeeze(-1) if shape == (1,) else target  # y of shape [N] or [N, k]
    output.requires_grad_(True)
    loss = task.loss(output, target)
    expected = 0.5 * shape[0] * nn.MSELoss()(output.reshape(target.shape), target)
    assert torch.allclose(loss, expected, rtol=1e-12)
    (grad,) = torch.autograd.grad(loss, output)
    # ∂ℓ/∂ŷ = (ŷ − y)/n: the ½ cancels the square's 2
    assert torch.allclose(grad, (output - target.reshape(output.shape)).detach() / 16)


def test_regression_reads_targets_of_any_shape():
    task = Regression(outputs=6)
    output, target = torch.randn(4, 6), torch.randn(4, 2, 3)
    expected = 0.5 * (output - target.reshape(4, 6)).pow(2).sum(1).mean()
    assert torch.allclose(task.loss(output, target), expected)


@pytest.mark.parametrize("k", [1, 3])
def test_regression_metrics_equal_torchmetrics_over_the_whole_split(k):
    task = Regression(outputs=k)
    metric = task.new_metrics()
    outputs, targets, losses = [], [], []
    for output, target in batches(5, 7, k):
        target = target.squeeze(-1) if k == 1 else target
        loss = task.loss(output, target)
        metric.update(loss, output, target)
        outputs.append(output.reshape(target.shape))
        targets.append(target)
        losses.append(float(loss) * len(target))
    y_hat, y = torch.cat(outputs), torch.cat(targets)
    values = metric.compute()
    assert float(values["loss"]) == pytest.approx(sum(losses) / len(y), rel=1e-6)
    assert float(values["mse"]) == pytest.approx(float(mean_squared_error(y_hat, y)), rel=1e-6)
    assert float(values["mae"]) == pytest.approx(float(mean_absolute_error(y_hat, y)), rel=1e-6)
    assert float(values["r2"]) == pytest.approx(float(tm_r2(y_hat, y)), rel=1e-6)
    assert float(values["r2"]) == pytest.approx(r2_score(y.numpy(), y_hat.numpy()), rel=1e-6)


def test_regression_refuses_labels_nan_and_the_wrong_width():
    task = Regression(outputs=2)
    with pytest.raises(DataError, match="integer labels; task=regression needs real-valued"):
        task.check_targets(torch.tensor([0, 1, 2]), "here")
    with pytest.raises(DataError, match="NaN or inf in 1 rows"):
        task.check_targets(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), "here")
    with pytest.raises(DataError, match="3 target values per sample, the network has 2"):
        task.check_targets(torch.zeros(4, 3), "here")
    task.check_targets(torch.zeros(4, 2), "here")  # fits


# ------------------------------------------------------------------ binary
def test_binary_bce_equals_torchs_bce_with_logits_loss_in_value_and_gradient():
    task = Binary(loss="bce")
    z = torch.randn(32, 1, generator=GEN, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 2, (32,), generator=GEN)
    ours = task.loss(z, y)
    theirs = nn.BCEWithLogitsLoss()(z.squeeze(1), y.double())
    assert torch.allclose(ours, theirs, rtol=1e-12)
    g_ours, g_theirs = (torch.autograd.grad(v, z)[0] for v in (ours, theirs))
    assert torch.allclose(g_ours, g_theirs, rtol=1e-12)


def test_binary_squared_is_the_worked_examples_loss_and_gradients():
    """One unit z = wx + b: the task's loss plus λw², averaged over samples, has the value
    and the (∂/∂w, ∂/∂b) of the hand formulas of autograd/worked_example.py, averaged."""
    task, lam = Binary(loss="squared"), 0.3
    unit = nn.Linear(1, 1).double()
    x = torch.randn(9, 1, generator=GEN, dtype=torch.float64)
    y = torch.randint(0, 2, (9,), generator=GEN)
    loss = task.loss(unit(x), y) + lam * unit.weight.pow(2).sum()
    g_w, g_b = torch.autograd.grad(loss, [unit.weight, unit.bias])
    w, b = float(unit.weight.detach()), float(unit.bias.detach())
    samples = list(zip(x[:, 0].tolist(), y.tolist(), strict=True))
    assert float(loss) == pytest.approx(
        np.mean([loss_by_hand(w, b, xi, yi, lam) for xi, yi in samples]), rel=1e-12
    )
    hand = np.mean([grads_by_hand(w, b, xi, yi, lam) for xi, yi in samples], axis=0)
    assert float(g_w) == pytest.approx(hand[0], rel=1e-12)
    assert float(g_b) == pytest.approx(hand[1], rel=1e-12)


def test_binary_metrics_equal_torchmetrics_and_sklearn():
    task = Binary()
    metric = task.new_metrics()
    zs, ys = [], []
    for z, y in batches(4, 25, 1, integer=2):
        metric.update(task.loss(z, y), z, y)
        zs.append(z.squeeze(1))
        ys.append(y)
    z, y = torch.cat(zs), torch.cat(ys)
    values = metric.compute()
    assert float(values["acc"]) == pytest.approx(float(binary_accuracy(z.sigmoid(), y)))
    assert float(values["acc"]) == pytest.approx(float(((z > 0).long() == y).double().mean()))
    assert float(values["auroc"]) == pytest.approx(float(binary_auroc(z.sigmoid(), y)), rel=1e-6)
    assert float(values["auroc"]) == pytest.approx(roc_auc_score(y.numpy(), z.numpy()), rel=1e-6)


def test_binary_refuses_other_labels_one_class_and_other_losses():
    task = Binary()
    with pytest.raises(DataError, match="label 2 is outside 0..1"):
        task.check_targets(torch.tensor([0, 1, 2]), "here")
    with pytest.raises(DataError, match="every sample has label 1"):
        task.check_targets(torch.tensor([1, 1, 1]), "here")
    with pytest.raises(ParameterError, match="loss='hinge'"):
        Binary(loss="hinge")


# ------------------------------------------------------------------ classification
def test_classification_is_cross_entropy_and_accuracy():
    task = Classification(outputs=4)
    metric = task.new_metrics()
    for logits, y in batches(3, 10, 4, integer=4):
        loss = task.loss(logits, y)
        assert torch.allclose(loss, nn.CrossEntropyLoss()(logits, y))
        metric.update(loss, logits, y)
    assert set(metric.compute()) == {"loss", "acc"}
    with pytest.raises(DataError, match="every sample has label 3"):
        task.check_targets(torch.tensor([3, 3]), "here")
    with pytest.raises(DataError, match="task=regression"):
        task.check_targets(torch.tensor([0.5, 1.5]), "here")


# ------------------------------------------------------------------ every task
TASKS = {
    "classification": (Classification(outputs=5), 5, 5),
    "regression": (Regression(outputs=3), 3, None),
    "binary_bce": (Binary(loss="bce"), 1, 2),
    "binary_squared": (Binary(loss="squared"), 1, 2),
}


@pytest.mark.parametrize("name", list(TASKS))
def test_the_op_table_loss_equals_the_native_one_in_value_and_gradient(name):
    task, width, labels = TASKS[name]
    output = torch.randn(12, width, generator=GEN, dtype=torch.float64, requires_grad=True)
    if labels is None:
        target = torch.randn(12, width, generator=GEN, dtype=torch.float64)
    else:
        target = torch.randint(0, labels, (12,), generator=GEN)
    native, table = task.loss(output, target), task.op_loss(output, target)
    assert torch.allclose(native, table, rtol=1e-12)
    g_native, g_table = (torch.autograd.grad(v, output)[0] for v in (native, table))
    assert torch.allclose(g_native, g_table, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name", list(TASKS))
def test_a_monitor_the_task_does_not_log_is_refused(name):
    task = type(TASKS[name][0])
    with pytest.raises(ParameterError, match="monitor='val/foo'"):
        task(monitor="val/foo")
    with pytest.raises(ParameterError, match="mode='up'"):
        task(mode="up")
