"""The lecture's optimizers against torch.optim, over 100+ steps on several parameter tensors."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from descentlab.errors import ConfigError, ParameterError
from descentlab.optim import SGD, Adam, Adaptive, Momentum
from helpers.cli import run_cli

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


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_momentum_equals_torch_sgd_at_lr_eta_times_one_minus_mu_without_dampening(wd):
    """Out of the box (no seeded buffer): torch's b_1 = g_1 and b_t = μ b_{t−1} + g_t give
    (1 − μ) b_t = v_t, so SGD(lr=η(1−μ), momentum=μ) takes exactly our steps η v_t."""
    mu, lr = 0.9, 0.2
    compare(
        lambda p: Momentum(p, lr=lr, mu=mu, weight_decay=wd),
        lambda p: torch.optim.SGD(p, lr=lr * (1 - mu), momentum=mu, weight_decay=wd),
        tol=1e-12,
    )


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
def test_coordinate_scope_adaptive_equals_torch_adagrad(wd):
    compare(
        lambda p: Adaptive(p, lr=0.05, eps=1e-10, weight_decay=wd, scope="coordinate"),
        lambda p: torch.optim.Adagrad(p, lr=0.05, eps=1e-10, weight_decay=wd),
    )


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_equals_torch_adam(wd):
    compare(
        lambda p: Adam(p, lr=0.01, mu=0.9, beta=0.99, eps=1e-8, weight_decay=wd),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd),
    )


# ------------------------------------------------ the notes' literal forms, transcribed
def centered(g):
    return float(((g - g.mean()) ** 2).sum())


def literal_adaptive_global(params, grads_fn, lr, eps, steps):
    """The notes over one vector w ∈ R^d: g = all gradients concatenated,
    s_t ← s_{t−1} + ‖g_t − mean(g_t)‖²;  w ← w − η/(√s_t + ε) g_t."""
    s = 0.0
    for _ in range(steps):
        g = parameters_to_vector(grads_fn())
        with torch.no_grad():
            s = s + centered(g)
            w = parameters_to_vector(params) - lr / (s**0.5 + eps) * g
            vector_to_parameters(w, params)


def literal_adam_global(params, grads_fn, lr, mu, beta, eps, steps):
    """v_t ← (μv + (1−μ)g)/(1−μ^t);  s_t ← (βs + (1−β)‖g − mean g‖²)/(1−β^t);
    w ← w − η/(√s_t+ε) v_t; g, v and w the concatenated vectors."""
    v, s = 0.0, 0.0
    for t in range(1, steps + 1):
        g = parameters_to_vector(grads_fn())
        with torch.no_grad():
            v = (mu * v + (1 - mu) * g) / (1 - mu**t)
            s = (beta * s + (1 - beta) * centered(g)) / (1 - beta**t)
            w = parameters_to_vector(params) - lr / (s**0.5 + eps) * v
            vector_to_parameters(w, params)


def literal_adaptive_tensor(params, grads_fn, lr, eps, steps):
    """The same rule with a scalar s per tensor."""
    s = [0.0 for _ in params]
    for _ in range(steps):
        grads = grads_fn()
        with torch.no_grad():
            for i, (w, g) in enumerate(zip(params, grads, strict=True)):
                s[i] = s[i] + centered(g)
                w -= lr / (s[i] ** 0.5 + eps) * g


def literal_adam_tensor(params, grads_fn, lr, mu, beta, eps, steps):
    """The notes' Adam with a scalar s per tensor."""
    v = [torch.zeros_like(p) for p in params]
    s = [0.0 for _ in params]
    for t in range(1, steps + 1):
        grads = grads_fn()
        with torch.no_grad():
            for i, (w, g) in enumerate(zip(params, grads, strict=True)):
                v[i] = (mu * v[i] + (1 - mu) * g) / (1 - mu**t)
                s[i] = (beta * s[i] + (1 - beta) * centered(g)) / (1 - beta**t)
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


def check_against_transcription(make, transcription, **kwargs):
    net, x, y = problem()
    start = [p.detach().clone() for p in net.parameters()]
    ours = train(net, make(net.parameters()), x, y)
    literal = run_transcription(transcription, **kwargs)
    assert_same(ours, literal)
    assert any((p - q).abs().max() > 5e-3 for p, q in zip(ours, start, strict=True))  # moved


def test_global_adaptive_equals_the_notes_formula_over_the_concatenated_vector():
    check_against_transcription(
        lambda p: Adaptive(p, lr=0.05, eps=1e-8), literal_adaptive_global, lr=0.05, eps=1e-8
    )


def test_global_is_not_per_tensor():
    """The two scopes really differ on this problem (so the tests above can tell them apart)."""
    net, x, y = problem()
    per_tensor = run_transcription(literal_adaptive_tensor, lr=0.05, eps=1e-8)
    ours = train(net, Adaptive(net.parameters(), lr=0.05, eps=1e-8), x, y)
    assert max((p - q).abs().max() for p, q in zip(ours, per_tensor, strict=True)) > 1e-2


def test_tensor_scope_adaptive_equals_the_per_tensor_formula():
    check_against_transcription(
        lambda p: Adaptive(p, lr=0.05, eps=1e-8, scope="tensor"),
        literal_adaptive_tensor,
        lr=0.05,
        eps=1e-8,
    )


# β = μ = 0.5: the notes' correction never compounds (β/(1−β^t) < 1 for t ≥ 2), so all 120
# steps move the parameters; at 0.9/0.99 the updates become negligible after a few steps.
@pytest.mark.parametrize("mu,beta", [(0.9, 0.99), (0.5, 0.5)])
def test_global_lecture_adam_equals_the_notes_formula_over_the_concatenated_vector(mu, beta):
    check_against_transcription(
        lambda p: Adam(p, lr=0.01, mu=mu, beta=beta, eps=1e-8, form="lecture"),
        literal_adam_global,
        lr=0.01,
        mu=mu,
        beta=beta,
        eps=1e-8,
    )


@pytest.mark.parametrize("mu,beta", [(0.9, 0.99), (0.5, 0.5)])
def test_tensor_scope_lecture_adam_equals_the_per_tensor_formula(mu, beta):
    check_against_transcription(
        lambda p: Adam(p, lr=0.01, mu=mu, beta=beta, eps=1e-8, form="lecture", scope="tensor"),
        literal_adam_tensor,
        lr=0.01,
        mu=mu,
        beta=beta,
        eps=1e-8,
    )


def test_lecture_adam_inflates_early_first_moments():
    w = torch.zeros(4, requires_grad=True)
    opt = Adam([w], lr=0.1, mu=0.9, form="lecture")
    for _ in range(2):
        w.grad = torch.ones(4)
        opt.step()
    assert torch.allclose(opt.state[w]["v"], torch.full((4,), 1 / (1 - 0.9**2)))  # ≈ 5.26 g, not g


def least_squares(form: str, steps: int, **kwargs):
    """½‖Aw − b‖², A 20×10, float32; returns the losses, the updates and s_t of each step."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 10, generator=gen), torch.randn(20, generator=gen)
    w = torch.zeros(10, requires_grad=True)
    opt = Adam([w], lr=1e-3, mu=0.9, beta=0.999, form=form, **kwargs)
    losses, updates, s = [], [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (a @ w - b).pow(2).sum()
        loss.backward()
        before = w.detach().clone()
        opt.step()
        losses.append(loss.item())
        updates.append(w.detach() - before)
        s.append(float(opt.global_state["s"]) if "s" in opt.global_state else None)
    return losses, updates, s


def test_lecture_adam_stalls_s_overflows_and_updates_become_exactly_zero():
    losses, updates, s = least_squares("lecture", steps=60)
    stalled = next(t for t, value in enumerate(s) if value == float("inf"))
    assert stalled < 25  # float32 overflow at about step 20 (the docstring's derivation)
    assert all(torch.equal(u, torch.zeros(10)) for u in updates[stalled:])
    assert len(set(losses[stalled + 1 :])) == 1  # the loss no longer changes at all
    # the derivation's lower bound s_t ≥ c_1 Π_{k≤t} β/(1−β^k), step by step until inf
    beta, bound = 0.999, s[0]
    for t in range(2, stalled + 1):
        bound *= beta / (1 - beta**t)
        assert s[t - 1] >= bound * (1 - 1e-5)
    standard, _, _ = least_squares("standard", steps=60)
    assert standard[-1] < standard[stalled] < standard[0]
    assert all(later < earlier for earlier, later in zip(standard, standard[1:], strict=False))
    assert losses[-1] > standard[-1]


@pytest.mark.parametrize("scope", ["tensor", "coordinate"])
def test_lecture_adam_stalls_in_every_scope(scope):
    _, updates, _ = least_squares("lecture", steps=60, scope=scope)
    assert all(torch.equal(u, torch.zeros(10)) for u in updates[40:])


def test_selecting_the_lecture_form_logs_one_warning(caplog, monkeypatch):
    import descentlab.optim.adam as adam_module

    monkeypatch.setattr(adam_module, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="descentlab.optim.adam"):
        for _ in range(3):
            Adam([torch.zeros(2, requires_grad=True)], form="lecture")
        Adam([torch.zeros(2, requires_grad=True)])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "form=lecture" in lines[0] and "\n" not in lines[0]


# ------------------------------------------------ centered norm 0 while the gradient is not
def test_tensor_scope_refuses_a_one_element_tensor_naming_it():
    params = [torch.zeros(3, requires_grad=True), torch.ones(1, requires_grad=True)]
    for make in (
        lambda: Adaptive(params, scope="tensor"),
        lambda: Adam(params, form="lecture", scope="tensor"),
    ):
        with pytest.raises(
            ConfigError, match=r"^scope='tensor'.*parameter 1 of group 0 \(shape \(1,\)\)"
        ) as err:
            make()
        assert "\n" not in str(err.value)
    named = [("net.bias", torch.ones(1, requires_grad=True))]
    with pytest.raises(ConfigError, match="net.bias has one element"):
        Adaptive(named, scope="tensor")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adaptive(p, lr=0.1),
        lambda p: Adaptive(p, lr=0.1, scope="tensor"),
        lambda p: Adam(p, lr=0.1, form="lecture"),
        lambda p: Adam(p, lr=0.1, form="lecture", scope="tensor"),
    ],
    ids=["adaptive-global", "adaptive-tensor", "adam-global", "adam-tensor"],
)
def test_an_all_equal_gradient_gives_no_step_instead_of_a_giant_one(make):
    """‖g − mean(g)‖ = 0 with g ≠ 0: the literal rule steps η g/ε (w 1 → −2e9); ours does not move,
    and moves normally once the gradient's entries differ."""
    w = torch.ones(3, requires_grad=True)
    opt = make([w])
    w.grad = torch.full((3,), 2.0)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(3))
    w.grad = torch.tensor([1.0, 2.0, 3.0])
    opt.step()
    assert 0 < (w.detach() - 1).abs().max() < 10  # an ordinary step (giant: ~1e9)


def test_global_scope_with_a_single_scalar_parameter_never_steps_giantly():
    w = torch.ones(1, requires_grad=True)
    opt = Adaptive([w], lr=0.1)
    for _ in range(3):
        w.grad = torch.ones(1)
        opt.step()
    assert torch.equal(w.detach(), torch.ones(1))


# ------------------------------------------------ scope: values, groups
@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adaptive(p, scope="vector"),
        lambda p: Adam(p, form="lecture", scope="layer"),
        lambda p: Adam(p, scope="tensor"),  # standard Adam is per coordinate
    ],
)
def test_bad_scope_is_a_one_line_config_error(make):
    with pytest.raises(ParameterError, match="^scope=") as err:
        make([torch.zeros(2, requires_grad=True)])
    assert "\n" not in str(err.value)


def test_global_scope_spans_parameter_groups_and_they_must_share_it():
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = Adaptive([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    a.grad, b.grad = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0])
    opt.step()
    assert float(opt.global_state["s"]) == pytest.approx(centered(torch.tensor([1.0, 2, 3, 4, 5])))
    assert "s" not in opt.state[a] and "s" not in opt.state[b]
    with pytest.raises(ParameterError, match="^scope='tensor'"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "scope": "tensor"})
    assert len(opt.param_groups) == 2  # the refused group was not kept
    unfrozen = torch.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [unfrozen], "lr": 0.01})  # e.g. BackboneFinetuning
    with pytest.raises(ParameterError, match="^beta="):
        Adam([{"params": [a]}, {"params": [b], "beta": 0.9}], form="lecture")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGD(p, lr=0.1, weight_decay=0.01),
        lambda p: Momentum(p, lr=0.1, mu=0.9),
        lambda p: Adaptive(p, lr=0.05),
        lambda p: Adaptive(p, lr=0.05, scope="tensor"),
        lambda p: Adaptive(p, lr=0.05, scope="coordinate"),
        lambda p: Adam(p, lr=0.01),
        lambda p: Adam(p, lr=0.01, mu=0.5, beta=0.5, form="lecture"),
        lambda p: Adam(p, lr=0.01, mu=0.5, beta=0.5, form="lecture", scope="tensor"),
    ],
    ids=[
        "sgd",
        "momentum",
        "adaptive",
        "adaptive-tensor",
        "adagrad",
        "adam",
        "adam-lecture",
        "adam-lecture-tensor",
    ],
)
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


@pytest.mark.parametrize(
    "make,key",
    [
        (lambda p: SGD(p, lr=0.0), "^lr="),
        (lambda p: Momentum(p, mu=1.0), "^mu="),
        (lambda p: Adam(p, beta=-0.1), "^beta="),
        (lambda p: Adaptive(p, weight_decay=-1), "^weight_decay="),
        (lambda p: Adam(p, form="notes"), "^form="),
    ],
)
def test_out_of_range_hyperparameters_are_errors_naming_the_parameter(make, key):
    """Called from Python, an optimizer names its parameter; built from a config, the run
    names the key (optimizer.lr: tests/test_bad_input.py)."""
    with pytest.raises(ParameterError, match=key):
        make([torch.zeros(2, requires_grad=True)])


def test_the_old_key_per_coordinate_fails_in_one_line_naming_scope(tmp_path):
    proc = run_cli(
        ["optimizer=adaptive", "optimizer.per_coordinate=true", f"hydra.run.dir={tmp_path}"],
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1
    assert "optimizer.per_coordinate" in lines[0] and "optimizer.scope" in lines[0]


def test_a_run_with_the_lecture_form_logs_exactly_one_warning_line(tmp_path):
    proc = run_cli(
        [
            "optimizer=adam",
            "optimizer.form=lecture",
            "debug=limit",
            "trainer.max_epochs=1",
            "callbacks.progress_bar=null",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    output = proc.stdout + proc.stderr
    lines = [line for line in output.splitlines() if "optimizer.form=lecture" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "exactly 0" in lines[0]


def test_the_lecture_forms_first_moment_peaks_near_3900_g_under_a_constant_gradient():
    """The docstring's figure: v_t = (μ v_{t−1} + (1−μ) g)/(1−μ^t) grows by μ/(1−μ^t) > 1 per
    step until t ≈ 22 (μ = 0.9), peaking at ≈ 3.9·10³ g at t = 21."""
    w = torch.zeros(3, requires_grad=True, dtype=torch.float64)
    opt = Adam([w], lr=1e-3, mu=0.9, form="lecture", scope="coordinate")
    peak = (0.0, 0)
    for t in range(1, 40):
        w.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
        v = opt.state[w]["v"][0].item()
        peak = max(peak, (v, t))
    assert peak[1] == 21 and peak[0] == pytest.approx(3945.1, rel=1e-3)
