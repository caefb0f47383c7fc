"""Initializers: our formulas against torch.nn.init's statistics and the lecture's variance."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from descentlab.callbacks.diagnostics import activation_variances
from descentlab.init import Initializer, fans
from descentlab.models.mlp import MLP
from descentlab.run.train import run

SHAPE = (384, 768)  # n_out, n_in: ~295k samples, a relative standard error of ~0.26 %


def sample_variance_tolerance(n: int, var: float, kurtosis: float, z: float = 5.0) -> float:
    """z standard errors of the sample variance: SE² = var² (κ − (n−3)/(n−1)) / n.

    κ = 3 for a normal, 9/5 for a uniform distribution.
    """
    return z * var * math.sqrt((kurtosis - (n - 3) / (n - 1)) / n)


N_IN, N_OUT = SHAPE[1], SHAPE[0]
CASES = {
    # name: (our kwargs, torch's init, formula variance, kurtosis)
    "xavier_normal": ({}, lambda w: nn.init.xavier_normal_(w), 2 / (N_IN + N_OUT), 3.0),
    "xavier_uniform": ({}, lambda w: nn.init.xavier_uniform_(w), 2 / (N_IN + N_OUT), 1.8),
    "kaiming_normal": (
        {},
        lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        2 / N_IN,
        3.0,
    ),
    "kaiming_uniform": (
        {},
        lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
        2 / N_IN,
        1.8,
    ),
    "normal": ({"std": 0.05}, lambda w: nn.init.normal_(w, std=0.05), 0.05**2, 3.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_variance_matches_the_formula_and_torch(name):
    kwargs, torch_init, expected, kurtosis = CASES[name]
    torch.manual_seed(0)
    ours = nn.Linear(N_IN, N_OUT)
    Initializer(name, **kwargs)(ours)
    theirs = torch_init(torch.empty(SHAPE))
    n = ours.weight.numel()
    tol = sample_variance_tolerance(n, expected, kurtosis)
    assert abs(ours.weight.var().item() - expected) < tol
    assert abs(theirs.var().item() - expected) < tol
    assert abs(ours.weight.mean().item()) < 5 * math.sqrt(expected / n)
    assert torch.count_nonzero(ours.bias) == 0  # biases start at zero


@pytest.mark.parametrize("name", ["xavier_uniform", "kaiming_uniform"])
def test_uniform_bounds_equal_torchs(name):
    ours = Initializer(name)(nn.Linear(N_IN, N_OUT)).weight
    theirs = CASES[name][1](torch.empty(SHAPE))
    assert ours.abs().max().item() == pytest.approx(theirs.abs().max().item(), rel=1e-3)


def test_xavier_normal_is_the_lectures_n_0_2_over_n_in_plus_n_out():
    w = Initializer("xavier_normal")(nn.Linear(300, 100)).weight
    assert fans(w) == (300, 100)
    assert abs(w.var().item() - 2 / 400) < sample_variance_tolerance(w.numel(), 2 / 400, 3.0)


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (50, 50)])
def test_orthogonal_has_orthonormal_rows_or_columns_like_torch(shape):
    ours = Initializer("orthogonal")(nn.Linear(shape[1], shape[0])).weight.detach()
    theirs = nn.init.orthogonal_(torch.empty(shape))
    for w in (ours, theirs):
        gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(min(shape)), atol=1e-5)


def test_default_keeps_pytorchs_own_initialization():
    torch.manual_seed(1)
    reference = nn.Linear(10, 4)
    torch.manual_seed(1)
    layer = nn.Linear(10, 4)
    torch.manual_seed(1)
    Initializer("default")(layer)
    assert torch.equal(layer.weight, reference.weight) and torch.equal(layer.bias, reference.bias)


def test_zeros_sets_every_parameter_to_zero(make_cfg):
    model = instantiate(make_cfg("init=zeros").model)
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())


def hidden_rows(model):
    return model.net[1].weight.detach()


@pytest.mark.parametrize("init", ["zeros", "constant"])
def test_constant_init_keeps_hidden_units_identical_through_training(make_cfg, init):
    cfg = make_cfg(
        f"init={init}",
        "model.net.hidden_dims=[16]",
        "model.net.activation=sigmoid",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "trainer.max_epochs=3",
        "logger=none",
    )
    run(cfg)
    state = torch.load(cfg.paths.output_dir + "/checkpoints/last.ckpt", weights_only=True)[
        "state_dict"
    ]
    w1 = state["net.1.weight"]
    assert torch.allclose(w1, w1[0].expand_as(w1), atol=1e-6)  # every hidden unit the same
    if init == "constant":
        assert not torch.allclose(w1, torch.full_like(w1, 0.1))  # it trained, symmetrically


def test_random_init_breaks_the_symmetry(make_cfg):
    cfg = make_cfg(
        "init=xavier_normal", "model.net.hidden_dims=[16]", "trainer.max_epochs=1", "logger=none"
    )
    run(cfg)
    state = torch.load(cfg.paths.output_dir + "/checkpoints/last.ckpt", weights_only=True)[
        "state_dict"
    ]
    w1 = state["net.1.weight"]
    assert (w1 - w1[0]).abs().max() > 1e-2


def deep_variance_ratio(init: Initializer, activation: str) -> float:
    torch.manual_seed(0)
    net = MLP((256,), 10, hidden_dims=[256] * 12, activation=activation)
    init(net)
    variances = activation_variances(net, torch.randn(1024, 256))
    assert len(variances) == 12
    return variances[-1] / variances[0]


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_xavier_keeps_activation_variance_through_12_layers(activation):
    gain = 5 / 3 if activation == "tanh" else 1.0  # tanh's gain makes up for its squashing
    ratio = deep_variance_ratio(Initializer("xavier_normal", gain=gain), activation)
    assert 0.5 <= ratio <= 2.0, ratio


def test_normal_std_1_explodes_and_std_001_vanishes():
    assert deep_variance_ratio(Initializer("normal", std=1.0), "identity") > 1e6
    assert deep_variance_ratio(Initializer("normal", std=0.01), "identity") < 1e-6


def test_diagnostics_callback_logs_per_layer_statistics(make_cfg, tmp_path):
    run(
        make_cfg(
            "callbacks=[default,diagnostics]",
            "trainer.max_epochs=1",
            "callbacks.diagnostics.every_n_steps=5",
        )
    )
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0]
    for key in (
        "diag/act_var/layer_0",
        "diag/act_var/layer_1",
        "diag/grad_norm/layer_0",
        "diag/grad_norm/layer_2",
    ):
        assert key in header
