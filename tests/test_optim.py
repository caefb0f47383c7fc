"""The lecture's optimizers against torch.optim, over 100+ steps on several parameter tensors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from descentlab.errors import ConfigError
from descentlab.optim import SGD, Adam, Adaptive, Momentum

STEPS = 120


def problem():
    """A small regression net (3 weight/bias tensors of different shapes), float64."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    y = torch.randn(64, 3, dtype=torch.float64)
    return net, x, y


def train(net, optimizer, x, y, steps=STEPS):
    for step in range(steps):
        idx = torch.arange(step % 4 * 16, step % 4 * 16 + 16)  # minibatches: varying gradients
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x[idx]), y[idx]).backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def assert_same(a, b, tol=1e-6):
    assert len(a) == len(b) == 4
    for p, q in zip(a, b, strict=True):
        assert torch.allclose(p, q, atol=tol, rtol=0), (p - q).abs().max()


def compare(ours_factory, theirs_factory, tol=1e-6):
    net, x, y = problem()
    twin = copy.deepcopy(net)
    ours = train(net, ours_factory(net.parameters()), x, y)
    theirs = train(twin, theirs_factory(twin.parameters()), x, y)
    assert_same(ours, theirs, tol)
    start = list(problem()[0].parameters())
    assert any(
        (p - q).abs().max() > 1e-2 for p, q in zip(ours, start, strict=True)
    )  # it really moved


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_sgd_equals_torch_sgd(wd):
    compare(
        lambda p: SGD(p, lr=0.1, weight_decay=wd),
        lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=wd),
    )


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_momentum_equals_torch_sgd_with_dampening_once_its_buffer_starts_at_zero(wd):
    mu = 0.9

    def torch_zero_started(params):
        params = list(params)
        opt = torch.optim.SGD(params, lr=0.2, momentum=mu, dampening=mu, weight_decay=wd)
        for p in params:  # v_0 = 0: torch then computes b_1 = μ·0 + (1−μ) g_1, like ours
            opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return opt

    compare(lambda p: Momentum(p, lr=0.2, mu=mu, weight_decay=wd), torch_zero_started)


def test_momentum_vs_torch_default_start_differs_by_mu_to_the_t_times_g1():
    """Same gradient sequence into both: torch's buffer b_t = v_t + μ^t g_1 exactly."""
    mu, lr = 0.8, 0.1
    w_ours = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w_torch = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ours = Momentum([w_ours], lr=lr, mu=mu)
    theirs = torch.optim.SGD([w_torch], lr=lr, momentum=mu, dampening=mu)
    grads = torch.randn(STEPS, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    drift = torch.zeros(3, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        w_ours.grad, w_torch.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        v, b = ours.state[w_ours]["v"], theirs.state[w_torch]["momentum_buffer"]
        assert torch.allclose(b - v, mu**t * grads[0], atol=1e-12)
        drift += lr * mu**t * grads[0]
        assert torch.allclose(w_ours - w_torch, drift, atol=1e-12)


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_per_coordinate_adaptive_equals_torch_adagrad(wd):
    compare(lambda p: Adaptive(p, lr=0.05, eps=1e-10, weight_decay=wd, per_coordinate=True),
            lambda p: torch.optim.Adagrad(p, lr=0.05, eps=1e-10, weight_decay=wd))  # fmt: skip


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_equals_torch_adam(wd):
    compare(lambda p: Adam(p, lr=0.01, mu=0.9, beta=0.99, eps=1e-8, weight_decay=wd),
            lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd))  # fmt: skip


# ------------------------------------------------ the notes' literal forms, transcribed
def literal_adaptive(params, grads_fn, lr, eps, steps):
    """s_t ← s_{t−1} + ‖g_t − mean(g_t)‖²;  w ← w − η/(√s_t + ε) g_t; a scalar s per tensor."""
    s = [0.0 for _ in params]
    for _ in range(steps):
        grads = grads_fn()
        with torch.no_grad():
            for i, (w, g) in enumerate(zip(params, grads, strict=True)):
                s[i] = s[i] + float(((g - g.mean()) ** 2).sum())
                w -= lr / (s[i] ** 0.5 + eps) * g


def literal_adam(params, grads_fn, lr, mu, beta, eps, steps):
    """v_t ← (μv + (1−μ)g)/(1−μ^t);  s_t ← (βs + (1−β)‖g − mean g‖²)/(1−β^t);  w ← w − η/(√s_t+ε) v_t."""
    v = [torch.zeros_like(p) for p in params]
    s = [0.0 for _ in params]
    for t in range(1, steps + 1):
        grads = grads_fn()
        with torch.no_grad():
            for i, (w, g) in enumerate(zip(params, grads, strict=True)):
                v[i] = (mu * v[i] + (1 - mu) * g) / (1 - mu**t)
                s[i] = (beta * s[i] + (1 - beta) * float(((g - g.mean()) ** 2).sum())) / (
                    1 - beta**t
                )
                w -= lr / (s[i] ** 0.5 + eps) * v[i]


def run_transcription(transcription, **kwargs):
    net, x, y = problem()
    params = list(net.parameters())
    step = {"n": 0}

    def grads_fn():
        idx = torch.arange(step["n"] % 4 * 16, step["n"] % 4 * 16 + 16)
        step["n"] += 1
        return torch.autograd.grad(nn.functional.mse_loss(net(x[idx]), y[idx]), params)

    transcription(params, grads_fn, steps=STEPS, **kwargs)
    return [p.detach().clone() for p in params]


def test_lecture_adaptive_equals_the_notes_formula():
    net, x, y = problem()
    ours = train(net, Adaptive(net.parameters(), lr=0.05, eps=1e-8), x, y)
    assert_same(ours, run_transcription(literal_adaptive, lr=0.05, eps=1e-8))


def test_lecture_adam_equals_the_notes_formula():
    net, x, y = problem()
    ours = train(
        net, Adam(net.parameters(), lr=0.01, mu=0.9, beta=0.99, eps=1e-8, form="lecture"), x, y
    )
    assert_same(ours, run_transcription(literal_adam, lr=0.01, mu=0.9, beta=0.99, eps=1e-8))


def test_lecture_adam_inflates_early_first_moments():
    w = torch.zeros(4, requires_grad=True)
    opt = Adam([w], lr=0.1, mu=0.9, form="lecture")
    for _ in range(2):
        w.grad = torch.ones(4)
        opt.step()
    assert torch.allclose(opt.state[w]["v"], torch.full((4,), 1 / (1 - 0.9**2)))  # ≈ 5.26 g, not g


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.1, weight_decay=0.01), lambda p: Momentum(p, lr=0.1, mu=0.9),
    lambda p: Adaptive(p, lr=0.05), lambda p: Adaptive(p, lr=0.05, per_coordinate=True),
    lambda p: Adam(p, lr=0.01), lambda p: Adam(p, lr=0.01, form="lecture"),
], ids=["sgd", "momentum", "adaptive", "adagrad", "adam", "adam-lecture"])  # fmt: skip
def test_state_survives_a_checkpoint_round_trip(make, tmp_path):
    net, x, y = problem()
    net_a = copy.deepcopy(net)
    opt_a = make(net_a.parameters())
    straight = train(net_a, opt_a, x, y, steps=100)
    net_b = copy.deepcopy(net)
    opt_b = make(net_b.parameters())
    train(net_b, opt_b, x, y, steps=48)
    torch.save({"net": net_b.state_dict(), "opt": opt_b.state_dict()}, tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    net_c = copy.deepcopy(net)
    net_c.load_state_dict(saved["net"])
    opt_c = make(net_c.parameters())
    opt_c.load_state_dict(saved["opt"])
    # continue with the same minibatch phase (48 is a multiple of 4)
    resumed = train(net_c, opt_c, x, y, steps=52)
    assert_same(resumed, straight, tol=1e-12)


@pytest.mark.parametrize("make,key", [
    (lambda p: SGD(p, lr=0.0), "optimizer.lr"), (lambda p: Momentum(p, mu=1.0), "optimizer.mu"),
    (lambda p: Adam(p, beta=-0.1), "optimizer.beta"), (lambda p: Adaptive(p, weight_decay=-1), "optimizer.weight_decay"),
    (lambda p: Adam(p, form="notes"), "optimizer.form"),
])  # fmt: skip
def test_out_of_range_hyperparameters_are_config_errors(make, key):
    with pytest.raises(ConfigError, match=key):
        make([torch.zeros(2, requires_grad=True)])
