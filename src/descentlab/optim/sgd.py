"""Gradient descent: w ← w − η ∇L(w)."""

from __future__ import annotations

from typing import Annotated

import torch

from descentlab.optim.base import LectureOptimizer
from descentlab.rules import OPTIMIZER, checked


class SGD(LectureOptimizer):
    r"""Stochastic gradient descent, the lecture's update

    .. math::  w_{t+1} \leftarrow w_t - \eta\, g_t,\qquad g_t = \nabla \tilde{\mathcal L}(w_t) + \lambda w_t

    where :math:`\tilde{\mathcal L}(w) = \frac{1}{|S|}\sum_{i\in S}\ell(y_i, \hat y_i)` is the
    minibatch estimate of the full loss. With ``data.batch_size=full`` the sample S is
    the whole training set and this is (full-batch) gradient descent.

    Args:
        lr: η, the learning rate.
        weight_decay: λ, coupled L2 (adds λw to the gradient).
        foreach: one ``torch._foreach_add_`` over all tensors (null/true) or a loop (false).

    Equals ``torch.optim.SGD(lr=η, weight_decay=λ)`` (momentum 0).
    """

    @checked
    def __init__(
        self,
        params,
        lr: Annotated[float, OPTIMIZER["lr"]] = 0.1,
        weight_decay: Annotated[float, OPTIMIZER["weight_decay"]] = 0.0,
        foreach: Annotated[bool | None, OPTIMIZER["foreach"]] = None,
    ):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "foreach": foreach})

    def update(self, p, g, state, group) -> None:
        p.add_(g, alpha=-group["lr"])

    def supports_foreach(self, group: dict) -> bool:
        return True

    def update_all(self, params, grads, states, group) -> None:
        torch._foreach_add_(params, grads, alpha=-group["lr"])
