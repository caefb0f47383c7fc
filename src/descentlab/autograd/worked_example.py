"""The lecture's worked example, differentiated by hand.

    L(w, b) = ½ (y − σ(w x + b))² + λ w²

with z = w x + b, r = w², u = σ(z), l = ½(y − u)², L = l + λ r. Backward, from the top:

    ∂L/∂L = 1,  ∂L/∂l = 1,  ∂L/∂r = λ
    ∂L/∂u = ∂L/∂l · ∂l/∂u = u − y
    ∂L/∂z = ∂L/∂u · σ'(z) = (u − y) · u (1 − u)
    ∂L/∂w = ∂L/∂z · ∂z/∂w + ∂L/∂r · ∂r/∂w = ∂L/∂z · x + λ · 2w
    ∂L/∂b = ∂L/∂z · ∂z/∂b = ∂L/∂z
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from descentlab.autograd import ops

# The nodes of the computation graph, in the order the backward pass reaches them.
NODES = ("L", "r", "l", "u", "z", "w", "b")


def loss_by_hand(w: float, b: float, x: float, y: float, lam: float) -> float:
    """The forward pass: plug it in."""
    u = 1.0 / (1.0 + math.exp(-(w * x + b)))
    return 0.5 * (y - u) ** 2 + lam * w**2


def intermediates_by_hand(w: float, b: float, x: float, y: float, lam: float) -> dict[str, float]:
    """∂L/∂(node) for every node of the graph, from the hand-derived chain rule above."""
    z = w * x + b
    u = 1.0 / (1.0 + math.exp(-z))
    d = {"L": 1.0, "r": lam, "l": 1.0}  # ∂L/∂L, ∂L/∂r, ∂L/∂l
    d["u"] = d["l"] * (u - y)  # ∂l/∂u = −(y − u)
    d["z"] = d["u"] * u * (1.0 - u)  # σ'(z) = σ(z)(1 − σ(z))
    d["w"] = d["z"] * x + d["r"] * 2.0 * w  # two paths: through z and through r
    d["b"] = d["z"] * 1.0  # ∂z/∂b = 1
    return d


def grads_by_hand(w: float, b: float, x: float, y: float, lam: float) -> tuple[float, float]:
    """(∂L/∂w, ∂L/∂b) from the hand-derived chain rule above."""
    d = intermediates_by_hand(w, b, x, y, lam)
    return d["w"], d["b"]


def graph_with_ops(w, b, x, y, lam) -> dict[str, Tensor]:
    """The forward pass built from the op table, as named nodes."""
    z = ops.add(ops.mul(w, x), b)
    u = ops.sigmoid(z)
    l = ops.mul(ops.pow(ops.sub(y, u), 2.0), 0.5)  # noqa: E741 - the lecture's name
    r = ops.pow(w, 2.0)
    return {"L": ops.add(l, ops.mul(r, lam)), "r": r, "l": l, "u": u, "z": z, "w": w, "b": b}


def graph_with_torch(w, b, x, y, lam) -> dict[str, Tensor]:
    """The same graph with torch's own operations."""
    z = w * x + b
    u = torch.sigmoid(z)
    l = 0.5 * (y - u) ** 2  # noqa: E741
    r = w**2
    return {"L": l + lam * r, "r": r, "l": l, "u": u, "z": z, "w": w, "b": b}


def loss_with_ops(w, b, x, y, lam):
    """The same L built from the op table; ``.backward()`` then applies the table's rows."""
    return graph_with_ops(w, b, x, y, lam)["L"]


def intermediates_by_autograd(
    w: float, b: float, x: float, y: float, lam: float, graph=graph_with_ops
) -> dict[str, float]:
    """∂L/∂(node) for every node, as autograd computes it through ``graph`` (float64).

    ``retain_grad`` keeps the gradient of the non-leaf nodes, which autograd otherwise
    frees as soon as it has passed it on.
    """
    leaf = lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True)  # noqa: E731
    nodes = graph(
        leaf(w),
        leaf(b),
        torch.tensor(x, dtype=torch.float64),
        torch.tensor(y, dtype=torch.float64),
        lam,
    )
    for name in ("L", "r", "l", "u", "z"):
        nodes[name].retain_grad()
    nodes["L"].backward()
    return {name: nodes[name].grad.item() for name in NODES}
