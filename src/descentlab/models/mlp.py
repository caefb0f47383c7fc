"""The lecture's multilayer perceptron, built with ``nn.Sequential``.

With one hidden layer and sigmoid activations it is exactly the lecture's network

    u = σ(W x),   v = σ(W' u)

except that the last layer is linear (no σ): the task reads its output (a classifier's
logits through log-softmax, a binary task's z through σ, a regression's values as they are;
see :mod:`descentlab.tasks`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from descentlab.rules import NET, checked

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


class LectureDropout(nn.Module):
    """The lecture's dropout: v = m ⊙ σ(u), m_i ~ Bernoulli(1 − p), with no rescaling.

    In training a unit is kept with probability 1 − p, so E[v] = (1 − p) σ(u). At
    evaluation every unit is kept, and the layer multiplies by (1 − p) to give the next
    layer the activations it was trained on (their expectation). PyTorch's ``nn.Dropout``
    is the *inverted* form: it divides by (1 − p) in training and does nothing at
    evaluation; the two train the same network up to that factor.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            keep = torch.bernoulli(torch.full_like(x, 1.0 - self.p))
            return x * keep
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


DROPOUTS = {"inverted": nn.Dropout, "lecture": LectureDropout}


class MLP(nn.Sequential):
    """``Flatten → [Linear → activation → (Dropout)] × len(hidden_dims) → Linear``.

    Args:
        input_shape: shape of one input sample, e.g. ``(1, 8, 8)``; flattened first.
        num_outputs: output width (the task's ``outputs``: K class logits, k target
            values, or 1 for a binary task's sigmoid unit).
        hidden_dims: widths of the hidden layers, e.g. ``[128, 64]``; ``[]`` gives
            multinomial logistic regression.
        activation: ``relu``, ``sigmoid``, ``tanh`` or ``identity``.
        dropout: rate ``p`` of dropout after each hidden activation (0 disables it).
        dropout_form: ``inverted`` (PyTorch's ``nn.Dropout``: scale by 1/(1 − p) in
            training) or ``lecture`` (:class:`LectureDropout`: v = m ⊙ σ(u) in training,
            times (1 − p) at evaluation).
        ops: ``native`` (torch.nn layers) or ``optable`` (the lecture's op table, see
            ``descentlab.autograd``); both have the same parameters and initialization.
        bias: ``False`` drops every bias: with ``activation=identity`` the net is then the
            lecture's deep linear network f_w(x) = W_L ⋯ W_1 x exactly (with biases it is
            affine, and the gradient's product formula gains bias terms).
    """

    @checked
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_dims: Annotated[Sequence[int], NET["hidden_dims"]] = (128,),
        activation: Annotated[str, NET["activation"]] = "relu",
        dropout: Annotated[float, NET["dropout"]] = 0.0,
        ops: Annotated[str, NET["ops"]] = "native",
        bias: Annotated[bool, NET["bias"]] = True,
        dropout_form: Annotated[str, NET["dropout_form"]] = "inverted",
    ):
        dims = [math.prod(input_shape), *hidden_dims, num_outputs]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(itertools.pairwise(dims)):
            layers.append(self._linear(n_in, n_out, ops, bias))
            if i < len(dims) - 2:  # hidden layer: activation, then dropout
                layers.append(self._activation(activation, ops))
                if dropout > 0:
                    layers.append(DROPOUTS[dropout_form](dropout))
        super().__init__(*layers)
        self.input_shape = tuple(input_shape)
        self.num_outputs = num_outputs
        self.hidden_dims = list(hidden_dims)
        self.activation = activation
        self.ops = ops

    @staticmethod
    def _linear(n_in: int, n_out: int, ops: str, bias: bool) -> nn.Module:
        if ops == "optable":
            from descentlab.autograd.layers import OpLinear

            return OpLinear(n_in, n_out, bias=bias)
        return nn.Linear(n_in, n_out, bias=bias)

    @staticmethod
    def _activation(name: str, ops: str) -> nn.Module:
        if ops == "optable":
            from descentlab.autograd.layers import OP_ACTIVATIONS

            return OP_ACTIVATIONS[name]()
        return ACTIVATIONS[name]()
