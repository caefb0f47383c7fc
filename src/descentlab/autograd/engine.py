"""Backpropagation as on the board: a scalar ``Value`` that records how it was made.

The lecture's engine, in the size of micrograd (karpathy/micrograd, ``engine.py``): each
op of the table computes its forward value and leaves behind a ``_backward`` that knows
its local derivative. ``backward()`` visits the graph from the output down, in reverse
topological order, and every node passes its gradient on with

    self.grad += out.grad * dout/dself

``+=`` because a node may feed several consumers: ∂ℒ/∂u = Σ_v ∂ℒ/∂v · ∂v/∂u, one term per
consumer v (in the worked example, w reaches ℒ through both z = wx + b and r = w²).
Torch's autograd engine does the same sum; here a student can read every line of it.

The table's rows (forward | dout/dself | dout/dother):

    add      a + b     | 1                | 1
    mul      a * b     | b                | a
    pow      a ** k    | k a^(k−1)        | (k a constant)
    relu     max(0, a) | 1 if a > 0 else 0
    sigmoid  σ(a)      | σ(a)(1 − σ(a))

and what they compose into: −a = a · (−1), a − b = a + (−b), a / b = a · b⁻¹.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable


class Value:
    """One scalar node of a computation graph: ``data`` (forward), ``grad`` (∂ℒ/∂self)."""

    def __init__(self, data: float, children: Iterable[Value] = (), op: str = "", label: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None
        self._prev = tuple(children)
        self.op = op  # the table's row that made this node ("" for a leaf)
        self.label = label  # the lecture's name of the node (z, u, l, ...), for drawings

    # ----------------------------------------------------------------- the table
    def __add__(self, other: Value | float) -> Value:
        other = as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad * 1.0
            other.grad += out.grad * 1.0

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += out.grad * other.data
            other.grad += out.grad * self.data

        out._backward = _backward
        return out

    def __pow__(self, k: float) -> Value:
        if not isinstance(k, (int, float)):
            raise TypeError("Value ** k: k must be a number (a constant exponent)")
        out = Value(self.data**k, (self,), f"**{k:g}")

        def _backward() -> None:
            self.grad += out.grad * k * self.data ** (k - 1)

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(0.0, self.data), (self,), "relu")

        def _backward() -> None:
            self.grad += out.grad * (1.0 if self.data > 0 else 0.0)

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        s = 1.0 / (1.0 + math.exp(-self.data))
        out = Value(s, (self,), "σ")

        def _backward() -> None:
            self.grad += out.grad * s * (1.0 - s)

        out._backward = _backward
        return out

    # ------------------------------------------------------- what they compose into
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-as_value(other))

    def __truediv__(self, other: Value | float) -> Value:
        return self * as_value(other) ** -1.0

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rsub__(self, other: float) -> Value:
        return as_value(other) - self

    def __rtruediv__(self, other: float) -> Value:
        return as_value(other) / self

    # ---------------------------------------------------------------- backward pass
    def topological_order(self) -> list[Value]:
        """Every node this one depends on, each after all of its inputs."""
        order: list[Value] = []
        seen: set[int] = set()

        def visit(node: Value) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            for child in node._prev:
                visit(child)
            order.append(node)

        visit(self)
        return order

    def backward(self) -> None:
        """∂self/∂node into every node's ``grad``: dself/dself = 1, then each node, from
        the output down, adds its share to its inputs' gradients (the ``+=`` above).

        Gradients accumulate across calls, as in torch: call :func:`zero_grad` first.
        """
        order = self.topological_order()
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

    def zero_grad(self) -> None:
        """Set the gradient of every node of this graph to 0."""
        for node in self.topological_order():
            node.grad = 0.0

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.6g}, grad={self.grad:.6g})"


def as_value(x: Value | float) -> Value:
    return x if isinstance(x, Value) else Value(x)


def worked_example(w: float, b: float, x: float, y: float, lam: float) -> dict[str, Value]:
    """The lecture's ℒ(w, b) = ½(y − σ(wx + b))² + λw², its nodes named as in the notes:
    z = wx + b, u = σ(z), l = ½(y − u)², r = w², ℒ = l + λr. Call ``nodes["L"].backward()``."""
    w_, b_ = Value(w, label="w"), Value(b, label="b")
    z = w_ * x + b_
    u = z.sigmoid()
    l = 0.5 * (y - u) ** 2  # noqa: E741 - the lecture's name
    r = w_**2
    loss = l + lam * r
    nodes = {"L": loss, "r": r, "l": l, "u": u, "z": z, "w": w_, "b": b_}
    for name, node in nodes.items():
        node.label = name
    return nodes
