"""The lecture's op table, one ``torch.autograd.Function`` per row.

Backpropagation needs, for every op ``out = f(self, other)``, only its forward value and
its local derivative; the chain rule then multiplies the incoming gradient
``∂L/∂out`` by ``dout/dself`` and sums over every path (∂L/∂u_i = Σ_v ∂L/∂v · ∂v/∂u_i):

    | op      | forward        | dout/dself               | dout/dother               |
    |---------|----------------|--------------------------|---------------------------|
    | add     | self + other   | 1                        | 1                         |
    | mul     | self * other   | other                    | self                      |
    | pow     | self ** other  | other * self**(other-1)  | self**other * ln(self)    |
    | relu    | max(0, self)   | 1 if self > 0 else 0     |                           |
    | sigmoid | σ(self)        | σ(self)(1 − σ(self))     |                           |

Each Function below reads as one row: ``forward`` is the middle column, ``backward``
multiplies the incoming gradient by the right columns. Broadcasting is allowed, so a
gradient is summed back to each input's shape (:func:`unbroadcast`): an input that was
repeated along an axis receives the sum of the gradients of all its copies.

The vectorized ops the lecture's GPU section asks for sit below the table: ``MatVecOp``
(z = W u for a batch of u; backward ∂L/∂u = Wᵀ ∂L/∂z, ∂L/∂W = ∂L/∂z uᵀ), ``SumOp``
and a numerically stable ``LogSoftmaxOp``. With them an MLP and its cross-entropy
loss run on this module alone (see ``layers.py``).

Double backward (``gradgradcheck``): every ``backward`` here is written with
differentiable tensor operations on saved tensors, so all of them support it. The
second derivative of ``relu`` is 0 almost everywhere (its kink is not differentiable).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function


def unbroadcast(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    while grad.ndim > len(shape):  # leading axes that broadcasting added
        grad = grad.sum(dim=0)
    for axis, size in enumerate(shape):  # axes of size 1 that were stretched
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(dim=axis, keepdim=True)
    return grad


def _shape(x) -> torch.Size | None:
    return x.shape if isinstance(x, Tensor) else None


def _grad_for(ctx, i: int, grad: Tensor | None, shape: torch.Size | None) -> Tensor | None:
    if grad is None or shape is None or not ctx.needs_input_grad[i]:
        return None
    return unbroadcast(grad, shape)


# --------------------------------------------------------------------------- the table
class AddOp(Function):
    """out = self + other;  dout/dself = 1,  dout/dother = 1."""

    @staticmethod
    def forward(ctx, self, other):
        ctx.shapes = (_shape(self), _shape(other))
        return self + other

    @staticmethod
    def backward(ctx, grad):
        return _grad_for(ctx, 0, grad * 1, ctx.shapes[0]), _grad_for(
            ctx, 1, grad * 1, ctx.shapes[1]
        )


class MulOp(Function):
    """out = self * other;  dout/dself = other,  dout/dother = self."""

    @staticmethod
    def forward(ctx, self, other):
        ctx.shapes = (_shape(self), _shape(other))
        ref = self if isinstance(self, Tensor) else other
        # a Python number becomes a tensor of the other operand's dtype (no float32 rounding)
        ctx.save_for_backward(
            *(
                t
                if isinstance(t, Tensor)
                else torch.as_tensor(t, dtype=ref.dtype, device=ref.device)
                for t in (self, other)
            )
        )
        return self * other

    @staticmethod
    def backward(ctx, grad):
        self, other = ctx.saved_tensors
        return _grad_for(ctx, 0, grad * other, ctx.shapes[0]), _grad_for(
            ctx, 1, grad * self, ctx.shapes[1]
        )


class PowOp(Function):
    """out = self ** other;  dout/dself = other · self^(other−1),  dout/dother = self^other · ln self.

    The exponent's derivative needs ln(self), defined for self > 0; where self ≤ 0 it is
    set to 0 (as it is for a constant exponent, which gets no gradient at all).
    """

    @staticmethod
    def forward(ctx, self, other):
        ctx.shapes = (_shape(self), _shape(other))
        out = self**other
        ctx.save_for_backward(
            self,
            other
            if isinstance(other, Tensor)
            else torch.as_tensor(other, dtype=self.dtype, device=self.device),
            out,
        )
        return out

    @staticmethod
    def backward(ctx, grad):
        self, other, out = ctx.saved_tensors
        d_self = grad * other * self ** (other - 1)
        d_other = None
        if ctx.shapes[1] is not None and ctx.needs_input_grad[1]:
            positive = self > 0
            log_self = torch.log(torch.where(positive, self, torch.ones_like(self)))
            d_other = grad * torch.where(positive, out * log_self, torch.zeros_like(out))
        return _grad_for(ctx, 0, d_self, ctx.shapes[0]), _grad_for(ctx, 1, d_other, ctx.shapes[1])


class ReLUOp(Function):
    """out = max(0, self);  dout/dself = 1 if self > 0 else 0."""

    @staticmethod
    def forward(ctx, self):
        ctx.save_for_backward(self)
        return self.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (self,) = ctx.saved_tensors
        return grad * (self > 0).to(grad.dtype)


class SigmoidOp(Function):
    """out = σ(self) = 1 / (1 + e^(−self));  dout/dself = σ(self)(1 − σ(self)).

    The derivative is written in terms of the output, which is why it is saved.
    """

    @staticmethod
    def forward(ctx, self):
        out = torch.sigmoid(self)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


# --------------------------------------------------------------- vectorized building blocks
class MatVecOp(Function):
    """z = W u for every row u of a batch: ``out = u @ Wᵀ`` with W of shape (n_out, n_in).

    The lecture's "embarrassingly parallel" backward: each ∂L/∂u_j = Σ_i ∂L/∂z_i · W_ij,
    i.e. ∂L/∂u = Wᵀ ∂L/∂z, done for all rows as one matrix product; and ∂L/∂W_ij =
    Σ_batch ∂L/∂z_i · u_j, i.e. ∂L/∂W = (∂L/∂z)ᵀ u.
    """

    @staticmethod
    def forward(ctx, u, weight):
        ctx.save_for_backward(u, weight)
        return u @ weight.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad):
        u, weight = ctx.saved_tensors
        d_u = grad @ weight if ctx.needs_input_grad[0] else None
        d_w = None
        if ctx.needs_input_grad[1]:
            d_w = grad.reshape(-1, grad.shape[-1]).transpose(0, 1) @ u.reshape(-1, u.shape[-1])
        return d_u, d_w


class SumOp(Function):
    """out = Σ self over ``dim`` (all elements when None);  dout/dself = 1 for every element."""

    @staticmethod
    def forward(ctx, self, dim=None, keepdim=False):
        ctx.shape, ctx.dim, ctx.keepdim = self.shape, dim, keepdim
        return self.sum() if dim is None else self.sum(dim=dim, keepdim=keepdim)

    @staticmethod
    def backward(ctx, grad):
        if ctx.dim is not None and not ctx.keepdim:
            grad = grad.unsqueeze(ctx.dim)
        return grad.expand(ctx.shape) * 1, None, None


class LogSoftmaxOp(Function):
    """out_i = x_i − log Σ_j e^{x_j} along ``dim``;  ∂out_i/∂x_k = δ_ik − softmax_k.

    Computed as x − m − log Σ e^{x − m} with m = max x, so that e^{x} never overflows.
    The backward applies the Jacobian without forming it: g − softmax · Σ_i g_i.
    """

    @staticmethod
    def forward(ctx, x, dim=-1):
        shifted = x - x.amax(dim=dim, keepdim=True)
        out = shifted - shifted.exp().sum(dim=dim, keepdim=True).log()
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad - out.exp() * grad.sum(dim=ctx.dim, keepdim=True), None


# ----------------------------------------------------------------- what code calls
def add(a, b):
    return AddOp.apply(a, b)


def mul(a, b):
    return MulOp.apply(a, b)


def pow(a, b):  # noqa: A001 - the table's name for it
    return PowOp.apply(a, b)


def relu(a):
    return ReLUOp.apply(a)


def sigmoid(a):
    return SigmoidOp.apply(a)


def matvec(u, weight):
    return MatVecOp.apply(u, weight)


def sum(a, dim=None, keepdim=False):  # noqa: A001
    return SumOp.apply(a, dim, keepdim)


def log_softmax(x, dim=-1):
    return LogSoftmaxOp.apply(x, dim)


# Compositions: no new derivatives, the chain rule through the table does the work.
def neg(a):
    return mul(a, -1.0)


def sub(a, b):
    return add(a, neg(b))


def mean(a, dim=None):
    n = a.numel() if dim is None else a.shape[dim]
    return mul(sum(a, dim), 1.0 / n)


def tanh(a):
    """tanh(a) = 2σ(2a) − 1, built from the table's sigmoid, mul and add."""
    return add(mul(sigmoid(mul(a, 2.0)), 2.0), -1.0)
