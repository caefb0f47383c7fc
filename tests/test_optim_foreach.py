"""The lecture's optimizers: the foreach step (``update_all``) takes the loop's steps (``update``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from descentlab.errors import ParameterError
from descentlab.optim import SGD, Adam, Adaptive, Momentum

STEPS = 60

# (optimizer, options): every option the foreach path implements
CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "weight_decay": 0.01}),
    (Momentum, {"lr": 0.3, "mu": 0.9, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.01, "weight_decay": 0.01, "mu": 0.8, "beta": 0.99}),
    (Adaptive, {"lr": 0.5, "scope": "global"}),
    (Adaptive, {"lr": 0.5, "scope": "coordinate", "weight_decay": 0.01}),
]


def problem():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.Linear(3, 2)).double()
    x, y = torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64)
    return net, x, y


def groups(net):
    """Two parameter groups (the second at half the rate), as backbone_lr_ratio makes."""
    params = list(net.parameters())
    return [{"params": params[:4]}, {"params": params[4:]}]


def train(net, optimizer, x, y, steps=STEPS):
    last = list(net.parameters())[-1]
    for step in range(steps):
        idx = torch.arange(step % 4 * 16, step % 4 * 16 + 16)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.mse_loss(net(x[idx]), y[idx]).backward()
        if step % 3 == 0:
            last.grad = None  # a tensor without a gradient this step: left alone, its t too
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def make(cls, net, options, foreach):
    optimizer = cls(groups(net), foreach=foreach, **options)
    optimizer.param_groups[1]["lr"] *= 0.5
    return optimizer


@pytest.mark.parametrize(("cls", "options"), CASES)
def test_foreach_takes_the_loops_steps(cls, options):
    net, x, y = problem()
    twin, start = copy.deepcopy(net), [p.detach().clone() for p in net.parameters()]
    looped = train(net, make(cls, net, options, foreach=False), x, y)
    batched = train(twin, make(cls, twin, options, foreach=None), x, y)
    for p, q, p0 in zip(looped, batched, start, strict=True):
        assert torch.allclose(p, q, rtol=0, atol=1e-12), (p - q).abs().max()
        assert (p - p0).abs().max() > 1e-3  # every tensor really moved


@pytest.mark.parametrize(("cls", "options"), CASES)
def test_the_default_is_foreach_where_it_exists(cls, options, monkeypatch):
    calls = []
    original = cls.update_all
    monkeypatch.setattr(cls, "update_all", lambda self, *a: calls.append(1) or original(self, *a))
    net, x, y = problem()
    train(net, cls(net.parameters(), **options), x, y, steps=2)
    assert len(calls) == 2


def test_a_state_saved_by_the_loop_continues_under_foreach():
    net, x, y = problem()
    twin = copy.deepcopy(net)
    first = make(Adam, net, {"lr": 0.01}, foreach=False)
    train(net, first, x, y, steps=10)
    twin.load_state_dict(net.state_dict())
    second = make(Adam, twin, {"lr": 0.01}, foreach=True)
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as through a file
    assert second.param_groups[0]["foreach"] is False  # the saved groups come back too
    second.param_groups[0]["foreach"] = second.param_groups[1]["foreach"] = None
    looped, batched = train(net, first, x, y, 20), train(twin, second, x, y, 20)
    for p, q in zip(looped, batched, strict=True):
        assert torch.allclose(p, q, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("cls", "options"),
    [(Adam, {"form": "lecture"}), (Adaptive, {"scope": "tensor"})],
)
def test_foreach_true_where_there_is_none_is_one_line(cls, options):
    net, _, _ = problem()
    with pytest.raises(ParameterError, match="foreach") as error:
        cls(net.parameters(), foreach=True, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("cls", "options"),
    [(Adam, {"form": "lecture"}), (Adaptive, {"scope": "tensor"})],
)
def test_options_without_a_foreach_step_loop_by_default(cls, options, monkeypatch):
    monkeypatch.setattr(cls, "update_all", lambda *a: pytest.fail("no foreach step here"))
    net, x, y = problem()
    train(net, cls(net.parameters(), **options), x, y, steps=3)
