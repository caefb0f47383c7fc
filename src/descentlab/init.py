"""Weight initializers by name, written from their formulas (not torch.nn.init).

The lecture's argument: for a layer z_i = Σ_{j=1}^{n_in} W_ij z_j with independent,
zero-mean weights and inputs,

    var(z^(L)) = n_in · var(w) · var(z^(L-1)),

so activations keep their scale through depth only if n_in · var(w) ≈ 1. Averaging
the same condition for the backward pass (n_out · var(w) ≈ 1) gives Xavier/Glorot:

    var(w) = 2 / (n_in + n_out),     w ~ N(0, 2 / (n_in + n_out)).

Kaiming/He keeps n_in · var(w) = gain² (gain² = 2 for ReLU, which zeroes half its
inputs). ``zeros`` (or any ``constant``) shows the symmetry failure: every hidden unit
of a layer gets the same gradient and stays identical forever.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from descentlab.errors import ParameterError

GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}


def fans(weight: Tensor) -> tuple[int, int]:
    """(n_in, n_out) of a Linear weight (out, in) or a conv kernel (out, in, *k)."""
    if weight.ndim < 2:
        raise ValueError("fan_in/fan_out need a weight with at least 2 dimensions")
    receptive = math.prod(weight.shape[2:]) if weight.ndim > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def xavier_normal_(w: Tensor, gain: float = 1.0) -> Tensor:
    """w ~ N(0, gain² · 2/(n_in + n_out))."""
    n_in, n_out = fans(w)
    return w.normal_(0.0, gain * math.sqrt(2.0 / (n_in + n_out)))


@torch.no_grad()
def xavier_uniform_(w: Tensor, gain: float = 1.0) -> Tensor:
    """w ~ U(-a, a), a = gain · √(6/(n_in + n_out)): the uniform with variance 2/(n_in+n_out)."""
    n_in, n_out = fans(w)
    a = gain * math.sqrt(6.0 / (n_in + n_out))
    return w.uniform_(-a, a)


@torch.no_grad()
def kaiming_normal_(w: Tensor, gain: float = math.sqrt(2.0)) -> Tensor:
    """w ~ N(0, gain² / n_in)."""
    n_in, _ = fans(w)
    return w.normal_(0.0, gain / math.sqrt(n_in))


@torch.no_grad()
def kaiming_uniform_(w: Tensor, gain: float = math.sqrt(2.0)) -> Tensor:
    """w ~ U(-b, b), b = gain · √(3/n_in): variance gain²/n_in."""
    n_in, _ = fans(w)
    b = gain * math.sqrt(3.0 / n_in)
    return w.uniform_(-b, b)


@torch.no_grad()
def orthogonal_(w: Tensor, gain: float = 1.0) -> Tensor:
    """Rows (or columns, whichever are fewer) orthonormal, scaled by ``gain``.

    Draw A ~ N(0, 1) of shape (max, min), take A = QR and fix the signs with diag(R)
    so that Q is uniformly (Haar) distributed; transpose if there are more columns.
    """
    rows, cols = w.shape[0], w[0].numel()
    a = torch.randn(max(rows, cols), min(rows, cols), dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    return w.copy_((gain * q).reshape(w.shape).to(w.dtype))


@torch.no_grad()
def normal_(w: Tensor, std: float = 0.01) -> Tensor:
    """w ~ N(0, std²), independent of the layer's size (explodes or vanishes with depth)."""
    return w.normal_(0.0, std)


@torch.no_grad()
def constant_(w: Tensor, value: float = 0.0) -> Tensor:
    """Every weight the same value: hidden units are interchangeable (the symmetry failure)."""
    return w.fill_(value)


SCHEMES = {
    "xavier_normal": xavier_normal_,
    "xavier_uniform": xavier_uniform_,
    "kaiming_normal": kaiming_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "orthogonal": orthogonal_,
    "normal": normal_,
    "zeros": lambda w: constant_(w, 0.0),
    "constant": constant_,
}


class Initializer:
    """Applies a named scheme to every weight (``ndim >= 2``) of a module; biases to zero.

    ``default`` keeps PyTorch's own initialization (``reset_parameters``), biases included.
    ``zeros`` and ``constant`` set the biases to the same constant as the weights.

    Args:
        name: one of ``default`` or :data:`SCHEMES`.
        gain: multiplies the standard deviation (xavier, kaiming, orthogonal). ``None``
            takes it from ``nonlinearity``: 1 for xavier/orthogonal, √2 (ReLU) for kaiming.
        nonlinearity: picks the kaiming gain when ``gain`` is ``None``.
        std: the standard deviation for ``normal``.
        value: the constant for ``constant``.
    """

    def __init__(
        self,
        name: str = "default",
        gain: float | None = None,
        nonlinearity: str = "relu",
        std: float = 0.01,
        value: float = 0.0,
    ):
        if name != "default" and name not in SCHEMES:
            raise ParameterError("name", name, f"one of {['default', *sorted(SCHEMES)]}")
        if nonlinearity not in GAINS:
            raise ParameterError("nonlinearity", nonlinearity, f"one of {sorted(GAINS)}")
        self.name, self.gain, self.nonlinearity, self.std, self.value = (
            name,
            gain,
            nonlinearity,
            std,
            value,
        )

    def init_weight(self, w: Tensor) -> Tensor:
        if self.name in ("xavier_normal", "xavier_uniform", "orthogonal"):
            return SCHEMES[self.name](w, 1.0 if self.gain is None else self.gain)
        if self.name in ("kaiming_normal", "kaiming_uniform"):
            gain = GAINS[self.nonlinearity] if self.gain is None else self.gain
            return SCHEMES[self.name](w, gain)
        if self.name == "normal":
            return normal_(w, self.std)
        if self.name == "constant":
            return constant_(w, self.value)
        return SCHEMES[self.name](w)

    @torch.no_grad()
    def __call__(self, module: nn.Module) -> nn.Module:
        for layer in module.modules():
            weight = getattr(layer, "weight", None)
            if not isinstance(weight, Tensor) or weight.ndim < 2:
                continue
            if self.name == "default":
                layer.reset_parameters()
                continue
            self.init_weight(weight)
            bias = getattr(layer, "bias", None)
            if isinstance(bias, Tensor):
                bias.fill_(self.value if self.name in ("zeros", "constant") else 0.0)
        return module

    def __repr__(self) -> str:
        return f"Initializer(name={self.name!r})"
