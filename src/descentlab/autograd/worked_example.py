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

from descentlab.autograd import ops


def loss_by_hand(w: float, b: float, x: float, y: float, lam: float) -> float:
    """The forward pass: plug it in."""
    u = 1.0 / (1.0 + math.exp(-(w * x + b)))
    return 0.5 * (y - u) ** 2 + lam * w**2


def grads_by_hand(w: float, b: float, x: float, y: float, lam: float) -> tuple[float, float]:
    """(∂L/∂w, ∂L/∂b) from the hand-derived chain rule above."""
    z = w * x + b
    u = 1.0 / (1.0 + math.exp(-z))
    dL_du = u - y
    dL_dz = dL_du * u * (1.0 - u)
    dL_dw = dL_dz * x + lam * 2.0 * w
    dL_db = dL_dz
    return dL_dw, dL_db


def loss_with_ops(w, b, x, y, lam):
    """The same L built from the op table; ``.backward()`` then applies the table's rows."""
    z = ops.add(ops.mul(w, x), b)
    u = ops.sigmoid(z)
    l = ops.mul(ops.pow(ops.sub(y, u), 2.0), 0.5)  # noqa: E741 - the lecture's name
    r = ops.pow(w, 2.0)
    return ops.add(l, ops.mul(r, lam))
