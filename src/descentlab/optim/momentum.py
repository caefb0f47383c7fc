"""Momentum: an exponential moving average of gradients, v_t ← μ v_{t−1} + (1−μ) g_t."""

from __future__ import annotations

from typing import Annotated

import torch

from descentlab.optim.base import LectureOptimizer
from descentlab.rules import OPTIMIZER, checked


class Momentum(LectureOptimizer):
    r"""Gradient descent with momentum, as the lecture writes it ("keeps memory"):

    .. math::
        v_t \leftarrow \mu\, v_{t-1} + (1-\mu)\, g_t,\qquad
        w_{t+1} \leftarrow w_t - \eta\, v_t,\qquad v_0 = 0.

    v_t averages recent gradients: components that flip sign between steps (the
    oscillation across a narrow valley) cancel, components that agree (along the
    valley floor) add up.

    Relation to ``torch.optim.SGD``: exactly ``SGD(lr=η(1−μ), momentum=μ)`` (dampening 0).
    Torch's buffer b_t = μ b_{t−1} + g_t starts at b_1 = g_1, so (1−μ) b_t = v_t at every
    step and the two take the same steps. ``SGD(lr=η, momentum=μ, dampening=μ)`` follows
    the same recursion as v but starts at b_1 = g_1 instead of (1−μ) g_1, so b_t = v_t +
    μ^t g_1: the first gradient gets extra weight that decays geometrically (seeding its
    buffer with zeros makes the two identical). The tests check all three statements.

    Args:
        lr: η.  mu: μ ∈ [0, 1).  weight_decay: λ, coupled L2.
        foreach: ``torch._foreach_*`` over all tensors (null/true) or a loop (false).
    """

    @checked
    def __init__(
        self,
        params,
        lr: Annotated[float, OPTIMIZER["lr"]] = 0.1,
        mu: Annotated[float, OPTIMIZER["mu"]] = 0.9,
        weight_decay: Annotated[float, OPTIMIZER["weight_decay"]] = 0.0,
        foreach: Annotated[bool | None, OPTIMIZER["foreach"]] = None,
    ):
        super().__init__(
            params, {"lr": lr, "mu": mu, "weight_decay": weight_decay, "foreach": foreach}
        )

    def update(self, p, g, state, group) -> None:
        mu = group["mu"]
        if "v" not in state:
            state["v"] = torch.zeros_like(p)  # v_0 = 0
        v = state["v"]
        v.mul_(mu).add_(g, alpha=1 - mu)
        p.add_(v, alpha=-group["lr"])

    def supports_foreach(self, group: dict) -> bool:
        return True

    def update_all(self, params, grads, states, group) -> None:
        mu = group["mu"]
        for p, state in zip(params, states, strict=True):
            if "v" not in state:
                state["v"] = torch.zeros_like(p)
        velocities = [state["v"] for state in states]
        torch._foreach_mul_(velocities, mu)
        torch._foreach_add_(velocities, grads, alpha=1 - mu)
        torch._foreach_add_(params, velocities, alpha=-group["lr"])
