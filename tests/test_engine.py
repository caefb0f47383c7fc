"""The scalar engine (``autograd/engine.py``) against torch's autograd: the worked example
node by node, micrograd's own test expressions, and random graphs where nodes are reused."""

from __future__ import annotations

import random

import pytest
import torch

from descentlab.autograd.engine import Value, worked_example
from descentlab.autograd.worked_example import NODES, graph_with_torch, intermediates_by_autograd

EXAMPLES = [(0.5, -0.3, 1.2, 1.0, 0.1), (-2.0, 1.5, 0.7, 0.0, 0.0), (3.0, 0.0, -1.0, 1.0, 0.5)]


@pytest.mark.parametrize("w, b, x, y, lam", EXAMPLES)
def test_the_worked_example_matches_torch_at_every_node(w, b, x, y, lam):
    nodes = worked_example(w, b, x, y, lam)
    nodes["L"].backward()
    expected = intermediates_by_autograd(w, b, x, y, lam, graph=graph_with_torch)
    for name in NODES:
        assert nodes[name].grad == pytest.approx(expected[name], rel=1e-12, abs=1e-15), name
    value = graph_with_torch(*(torch.tensor(v, dtype=torch.float64) for v in (w, b, x, y)), lam)
    assert nodes["L"].data == pytest.approx(value["L"].item(), rel=1e-12)


def test_a_node_with_two_consumers_sums_their_gradients():
    a = Value(3.0)
    y = a * a + a  # three uses of a: dy/da = 2a + 1
    y.backward()
    assert a.grad == 7.0


def test_gradients_accumulate_until_zeroed():
    a = Value(2.0)
    y = a * 3.0
    y.backward()
    y.backward()
    assert a.grad == 6.0  # torch's convention: .backward() adds
    y.zero_grad()
    y.backward()
    assert a.grad == 3.0


def _both(build):
    """``build`` on Values and on float64 tensors; returns (Value out, leaves, torch out, leaves)."""
    return build(Value), build(lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))


def test_micrograds_sanity_check():
    def build(make):
        x = make(-4.0)
        z = 2 * x + 2 + x
        q = z.relu() + z * x
        h = (z * z).relu()
        return h + q + q * x, [x]

    (y, (x,)), (yt, (xt,)) = _both(build)
    y.backward()
    yt.backward()
    assert y.data == yt.item()
    assert x.grad == xt.grad.item()


def test_micrograds_more_ops():
    def build(make):
        a, b = make(-4.0), make(2.0)
        c = a + b
        d = a * b + b**3
        c = c + c + 1
        c = c + 1 + c + (-a)
        d = d + d * 2 + (b + a).relu()
        d = d + 3 * d + (b - a).relu()
        e = c - d
        f = e**2
        g = f / 2.0
        g = g + 10.0 / f
        return g, [a, b]

    (g, leaves), (gt, tleaves) = _both(build)
    g.backward()
    gt.backward()
    assert g.data == pytest.approx(gt.item(), rel=1e-12)
    for v, t in zip(leaves, tleaves, strict=True):
        assert v.grad == pytest.approx(t.grad.item(), rel=1e-12)


def random_graph(make, seed: int, size: int = 25):
    """A random expression over 3 leaves where later nodes reuse earlier ones."""
    rng = random.Random(seed)
    leaves = [make(rng.uniform(-2, 2)) for _ in range(3)]
    nodes = list(leaves)
    for _ in range(size):
        a, b = rng.choice(nodes), rng.choice(nodes)
        op = rng.choice(["add", "sub", "mul", "div", "pow", "relu", "sigmoid", "neg", "const"])
        if op == "add":
            out = a + b
        elif op == "sub":
            out = a - b
        elif op == "mul":
            out = a * b
        elif op == "div":
            out = a / (b.sigmoid() + 0.5)  # a denominator away from 0
        elif op == "pow":
            out = (a.sigmoid() + 0.1) ** rng.choice([2, 3, 0.5, -1.0])
        elif op == "relu":
            out = a.relu()
        elif op == "sigmoid":
            out = a.sigmoid()
        elif op == "neg":
            out = -a
        else:
            out = rng.uniform(-1, 1) * a + rng.uniform(-1, 1)
        nodes.append(out)
    total = nodes[-1]
    for node in nodes[-5:-1]:  # several outputs feed the loss: more shared paths
        total = total + node
    return total, leaves


@pytest.mark.parametrize("seed", range(20))
def test_random_graphs_match_torch(seed):
    def torch_leaf(v):
        return torch.tensor(v, dtype=torch.float64, requires_grad=True)

    out, leaves = random_graph(Value, seed)
    out_t, leaves_t = random_graph(torch_leaf, seed)
    out_t = out_t if isinstance(out_t, torch.Tensor) else torch.tensor(out_t)
    out.backward()
    out_t.backward()
    assert out.data == pytest.approx(out_t.item(), rel=1e-10, abs=1e-12)
    for v, t in zip(leaves, leaves_t, strict=True):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert v.grad == pytest.approx(expected, rel=1e-10, abs=1e-12)
