"""The op table: each Function against finite differences (gradcheck) and torch's own ops."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.nn import functional as F

from descentlab.autograd import ops
from descentlab.autograd.layers import OpLinear, op_cross_entropy
from descentlab.autograd.ops import unbroadcast
from descentlab.autograd.worked_example import grads_by_hand, loss_by_hand, loss_with_ops
from helpers import HAS_GPU, requires_gpu


def leaf(*shape, positive=False, device="cpu"):
    g = torch.Generator(device="cpu").manual_seed(hash(shape) % 2**31)
    t = (
        torch.rand(*shape, generator=g, dtype=torch.float64) + 0.5
        if positive
        else torch.randn(*shape, generator=g, dtype=torch.float64)
    )
    return t.to(device).requires_grad_(True)


def cases(device="cpu"):
    """(name, function, inputs): both operands and broadcast shapes for the binary ops."""
    L = lambda *s, **k: leaf(*s, device=device, **k)  # noqa: E731
    return [
        ("add", ops.add, (L(3, 4), L(3, 4))),
        ("add-broadcast-row", ops.add, (L(3, 4), L(4))),
        ("add-broadcast-both", ops.add, (L(3, 1), L(1, 4))),
        ("mul", ops.mul, (L(3, 4), L(3, 4))),
        ("mul-broadcast", ops.mul, (L(2, 3, 4), L(3, 1))),
        ("pow-tensor-exponent", ops.pow, (L(3, 4, positive=True), L(3, 4))),
        ("pow-broadcast-exponent", ops.pow, (L(3, 4, positive=True), L(4))),
        ("pow-constant-exponent", lambda a: ops.pow(a, 3.0), (L(3, 4),)),
        ("relu", ops.relu, (L(5, 6),)),
        ("sigmoid", ops.sigmoid, (L(5, 6),)),
        ("matvec", ops.matvec, (L(7, 4), L(3, 4))),
        ("matvec-3d-batch", ops.matvec, (L(2, 5, 4), L(3, 4))),
        ("sum-all", ops.sum, (L(3, 4),)),
        ("sum-dim", lambda a: ops.sum(a, 1), (L(3, 4),)),
        ("log_softmax", ops.log_softmax, (L(5, 7),)),
        ("tanh-composed", ops.tanh, (L(4, 4),)),
        (
            "cross_entropy",
            lambda z: op_cross_entropy(z, torch.tensor([0, 2, 1, 2], device=device)),
            (L(4, 3),),
        ),
    ]


CASES = cases()


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_gradcheck(name, fn, inputs):
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_gradgradcheck(name, fn, inputs):
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)


NATIVE = {
    "add": torch.add,
    "add-broadcast-row": torch.add,
    "add-broadcast-both": torch.add,
    "mul": torch.mul,
    "mul-broadcast": torch.mul,
    "pow-tensor-exponent": torch.pow,
    "pow-broadcast-exponent": torch.pow,
    "pow-constant-exponent": lambda a: a**3.0,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "matvec": lambda u, w: F.linear(u, w),
    "matvec-3d-batch": lambda u, w: F.linear(u, w),
    "sum-all": torch.sum,
    "sum-dim": lambda a: a.sum(1),
    "log_softmax": lambda a: F.log_softmax(a, -1),
    "tanh-composed": torch.tanh,
    "cross_entropy": lambda z: F.cross_entropy(z, torch.tensor([0, 2, 1, 2])),
}


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradients_equal_torchs_own(name, fn, inputs):
    ours = fn(*inputs)
    theirs = NATIVE[name](*inputs)
    assert torch.allclose(ours, theirs, atol=1e-12)
    upstream = torch.randn_like(ours)
    g_ours = torch.autograd.grad(ours, inputs, upstream)
    g_theirs = torch.autograd.grad(theirs, inputs, upstream)
    for a, b in zip(g_ours, g_theirs, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-10)


def test_every_function_defines_its_own_backward():
    # Written from the table: the graph holds our nodes, not torch's (AddBackward0, ...).
    x = leaf(4, 3)
    w = leaf(5, 3)
    out = op_cross_entropy(ops.relu(ops.matvec(x, w)), torch.tensor([0, 1, 2, 3]))
    names, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    assert names <= {
        "AddOpBackward",
        "MulOpBackward",
        "SumOpBackward",
        "LogSoftmaxOpBackward",
        "ReLUOpBackward",
        "MatVecOpBackward",
        "AccumulateGrad",
    }, names


def test_unbroadcast_sums_back_to_each_shape():
    grad = torch.ones(2, 3, 4)
    assert unbroadcast(grad, torch.Size([4])).tolist() == [6.0] * 4
    assert unbroadcast(grad, torch.Size([3, 1])).shape == (3, 1)
    assert unbroadcast(grad, torch.Size([3, 1]))[0, 0] == 8.0


def test_log_softmax_is_stable_for_huge_logits():
    z = torch.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    out = ops.log_softmax(z)
    assert torch.isfinite(out).all() and torch.allclose(out, F.log_softmax(z, -1))
    out.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_pow_exponent_gradient_is_zero_where_the_base_is_not_positive():
    base = torch.tensor([-2.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    exponent = torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64, requires_grad=True)
    ops.pow(base, exponent).sum().backward()
    assert exponent.grad[:2].tolist() == [0.0, 0.0]
    assert exponent.grad[2].item() == pytest.approx(4.0 * torch.log(torch.tensor(2.0)).item())
    assert base.grad.tolist() == [-4.0, 0.0, 4.0]


@pytest.mark.parametrize(
    "w,b,x,y,lam",
    [(0.5, -0.3, 1.7, 1.0, 0.1), (-1.2, 2.0, -0.4, 0.0, 0.0), (3.0, 0.1, 0.9, 0.3, 1.5)],
)
def test_worked_example_hand_ops_and_autograd_agree(w, b, x, y, lam):
    hand = grads_by_hand(w, b, x, y, lam)
    # the op table
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    loss = loss_with_ops(
        wt, bt, torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64), lam
    )
    loss.backward()
    assert loss.item() == pytest.approx(loss_by_hand(w, b, x, y, lam), abs=1e-12)
    assert (wt.grad.item(), bt.grad.item()) == pytest.approx(hand, abs=1e-12)
    # torch's own autograd
    wn = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bn = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    native = 0.5 * (y - torch.sigmoid(wn * x + bn)) ** 2 + lam * wn**2
    native.backward()
    assert (wn.grad.item(), bn.grad.item()) == pytest.approx(hand, abs=1e-12)


def test_op_linear_has_nn_linears_parameters_and_init():
    torch.manual_seed(0)
    native = torch.nn.Linear(6, 3)
    torch.manual_seed(0)
    ours = OpLinear(6, 3)
    assert torch.equal(native.weight, ours.weight) and torch.equal(native.bias, ours.bias)
    x = torch.randn(4, 6)
    assert torch.allclose(native(x), ours(x), atol=1e-6)


CUDA_CASES = cases("cuda") if HAS_GPU else []


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name,fn,inputs", CUDA_CASES, ids=[c[0] for c in CUDA_CASES])
def test_gradcheck_on_cuda(name, fn, inputs):
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
