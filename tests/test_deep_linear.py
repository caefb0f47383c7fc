"""The lecture's deep linear network f_w(x) = W_L ⋯ W_1 x (``+experiment=deep_linear``):
the gradient's product formula, and how the initialization's scale multiplies through it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from sklearn.datasets import load_digits
from torch import nn

from descentlab.models.mlp import MLP
from helpers.cli import run_cli
from helpers.compose import compose_config

LAYERS = 12  # the experiment's L


def deep_linear(tmp_path: Path, *overrides: str, seed: int = 0) -> nn.Module:
    """The experiment's network (float64), built from its config like a run builds it."""
    torch.manual_seed(seed)
    cfg = compose_config(["+experiment=deep_linear", *overrides], tmp_path)
    return instantiate(cfg.model).net.double()


def weights(net: nn.Module) -> list[torch.Tensor]:
    """[W_1, ..., W_L] in the order the input meets them."""
    return [m.weight for m in net.modules() if isinstance(m, nn.Linear)]


def chain(matrices: list[torch.Tensor], n: int) -> torch.Tensor:
    """W_k ⋯ W_1 for matrices = [W_1, ..., W_k]; the n×n identity when there are none."""
    product = torch.eye(n, dtype=torch.float64)
    for w in matrices:
        product = w @ product
    return product


def closed_form_gradients(ws: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """The notes' formula for L = ½‖f(x) − y‖², f(x) = W_L ⋯ W_1 x, one sample:

    ∂L/∂W_r = (W_L ⋯ W_{r+1})ᵀ (f(x) − y)  ⊗  (W_{r−1} ⋯ W_1 x)

    (an outer product: row vector "what the output needs" times column "what reaches W_r")."""
    f = chain(ws, x.numel()) @ x
    grads = []
    for r, w in enumerate(ws):
        after = chain(ws[r + 1 :], w.shape[0])  # W_L ⋯ W_{r+1}
        before = chain(ws[:r], x.numel()) @ x  # W_{r−1} ⋯ W_1 x
        grads.append(torch.outer(after.T @ (f - y), before))
    return grads


def test_the_experiment_is_a_deep_linear_network_without_biases(tmp_path):
    net = deep_linear(tmp_path)
    ws = weights(net)
    assert len(ws) == LAYERS >= 10
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Linear))
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    assert torch.allclose(net(x), x.flatten(1) @ chain(ws, 64).T, atol=1e-12)


@pytest.mark.parametrize("init", ["xavier_normal", "orthogonal", "default"])
def test_closed_form_product_gradient_equals_autograd_for_every_layer(tmp_path, init):
    net = deep_linear(tmp_path, f"init={init}")
    ws = weights(net)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, dtype=torch.float64, generator=gen)
    y = torch.randn(10, dtype=torch.float64, generator=gen)
    loss = 0.5 * (net(x.view(1, 1, 8, 8))[0] - y).pow(2).sum()
    autograd = torch.autograd.grad(loss, ws)
    for r, (ours, theirs) in enumerate(zip(closed_form_gradients(ws, x, y), autograd, strict=True)):
        scale = theirs.abs().max()
        assert scale > 0
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-10 * scale), f"layer {r}"


def test_with_biases_the_product_formula_no_longer_holds():
    """Why the experiment sets model.net.bias=false: biases add terms the formula lacks."""
    torch.manual_seed(0)
    net = MLP((6,), 4, [5] * 9, activation="identity").double()
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.bias, std=0.5)
    ws = weights(net)
    x, y = torch.randn(6, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    loss = 0.5 * (net(x.view(1, 6))[0] - y).pow(2).sum()
    autograd = torch.autograd.grad(loss, ws)
    gaps = [
        (a - b).abs().max() for a, b in zip(closed_form_gradients(ws, x, y), autograd, strict=True)
    ]
    assert max(gaps) > 1e-3


# ------------------------------------------------ initialization: vanishing and exploding
def digits_gradient_norms(net: nn.Module) -> list[float]:
    """‖∂L/∂W_r‖ of every layer for 256 digits, cross-entropy as in a run (layer_0 = W_1)."""
    digits = load_digits()
    x = torch.tensor(digits.images[:256], dtype=torch.float64).unsqueeze(1) / 16
    y = torch.tensor(digits.target[:256])
    grads = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), weights(net))
    return [float(g.norm()) for g in grads]


INITS = {
    "normal_small": ["init=normal", "init.std=0.05"],  # σ√n = 0.4 per layer
    "normal_large": ["init=normal", "init.std=0.5"],  # σ√n = 4
    "xavier_normal": ["init=xavier_normal"],
    "orthogonal": ["init=orthogonal"],
    "default": ["init=default"],
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_std_vanishes_and_large_std_explodes_in_every_layer(tmp_path, seed):
    """Each layer's gradient is a product of the L−1 other matrices, each scaling a vector by
    about σ√n: (σ√n)^(L−1) = 0.4^11 ≈ 4e-5 and 4^11 ≈ 4e6 against orthogonal's 1."""
    norms = {
        k: digits_gradient_norms(deep_linear(tmp_path, *v, seed=seed)) for k, v in INITS.items()
    }
    for small, large, reference in zip(
        norms["normal_small"], norms["normal_large"], norms["orthogonal"], strict=True
    ):
        assert small < 1e-3 * reference
        assert large > 1e3 * reference


@pytest.mark.parametrize("init", list(INITS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_and_last_layer_gradients_stay_within_a_factor_of_10(tmp_path, init, seed):
    """In a linear network depth scales every layer's gradient alike (each is a product of
    L−1 matrices), so the first/last ratio stays near 1 whatever the init; what vanishes or
    explodes is the gradient as a whole (test above)."""
    norms = digits_gradient_norms(deep_linear(tmp_path, *INITS[init], seed=seed))
    assert 0.1 < norms[0] / norms[-1] < 10


def test_orthogonal_init_gives_every_layer_the_same_gradient_norm(tmp_path):
    """Orthogonal matrices preserve inner products, so every layer sees the same ‖·‖ (up to
    the float32 rounding of the initial weights: ~6e-8 per matrix, 12 matrices)."""
    norms = digits_gradient_norms(deep_linear(tmp_path, "init=orthogonal"))
    assert max(norms) - min(norms) < 1e-5 * max(norms)


def test_scaling_every_weight_by_c_scales_every_gradient_by_c_to_the_L_minus_1(tmp_path):
    """Where f(x) ≈ 0 (small weights) ∂L/∂f no longer depends on the scale, and the product
    formula predicts the factor c^(L−1) exactly: vanishing is geometric in depth."""
    net = deep_linear(tmp_path, "init=normal", "init.std=0.01")
    before = digits_gradient_norms(net)
    with torch.no_grad():
        for w in weights(net):
            w.mul_(2.0)
    after = digits_gradient_norms(net)
    for b, a in zip(before, after, strict=True):
        assert a / b == pytest.approx(2.0 ** (LAYERS - 1), rel=1e-6)


# ------------------------------------------------ the experiment, run
def step_zero_diagnostics(run_dir: Path) -> dict[str, float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("diag/grad_norm/layer_0"):
                return {k: float(v) for k, v in row.items() if k.startswith("diag/") and v}
    raise AssertionError("no diag row")


def test_the_experiment_logs_per_layer_gradient_norms_that_vanish_with_a_small_std(tmp_path):
    quick = ["debug=limit", "trainer.max_epochs=1", "callbacks.progress_bar=null"]
    runs = {}
    for name, init in {"small": ["init=normal", "init.std=0.05"], "xavier": []}.items():
        run_cli(["+experiment=deep_linear", *init, *quick, f"hydra.run.dir={tmp_path / name}"])
        runs[name] = step_zero_diagnostics(tmp_path / name)
    grad = {k: [d[f"diag/grad_norm/layer_{i}"] for i in range(LAYERS)] for k, d in runs.items()}
    for small, xavier in zip(grad["small"], grad["xavier"], strict=True):
        assert small < 1e-3 * xavier
    for norms in grad.values():
        assert 0.1 < norms[0] / norms[-1] < 10
    # the forward signal vanishes geometrically: var(z) × (σ² n)^10 = 0.16^10 ≈ 1e-8 at the top
    act = runs["small"]
    assert act["diag/act_var/layer_10"] < 1e-6 * act["diag/act_var/layer_0"]


# ------------------------------------------------ the notes' own loss: ½‖f − y‖²
def teacher_gradient_norms(net: nn.Module, tmp_path: Path) -> list[float]:
    """‖∂L/∂W_r‖ of every layer for the squared loss on 256 samples of the experiment's teacher."""
    cfg = compose_config(["+experiment=deep_linear_squared"], tmp_path / "data")
    data = instantiate(cfg.data)
    data.setup("fit")
    x, y = (t[:256].double() for t in data.splits["train"])
    task = instantiate(cfg.task)
    grads = torch.autograd.grad(task.loss(net(x), y), weights(net))
    return [float(g.norm()) for g in grads]


def test_with_the_squared_loss_scaling_the_weights_by_c_scales_gradients_by_c_to_the_2L_minus_1(
    tmp_path,
):
    """With ½‖f − y‖², ∂L/∂f = f − y grows with the weights: where f ≫ y (σ√n = 2 per layer,
    f ≈ 2¹²·x), scaling every weight by c multiplies every layer's gradient by c^(L−1) · c^L
    = c^(2L−1) (cross-entropy's ∂L/∂f = softmax − onehot stays bounded: c^(L−1), above)."""
    torch.manual_seed(0)
    cfg = compose_config(
        ["+experiment=deep_linear_squared", "init=normal", "init.std=0.25"], tmp_path
    )
    net = instantiate(cfg.model).net.double()
    before = teacher_gradient_norms(net, tmp_path)
    with torch.no_grad():
        for w in weights(net):
            w.mul_(2.0)
    after = teacher_gradient_norms(net, tmp_path)
    for b, a in zip(before, after, strict=True):
        assert a / b == pytest.approx(2.0 ** (2 * LAYERS - 1), rel=1e-2)


def test_the_squared_loss_experiment_explodes_far_more_than_cross_entropy(tmp_path):
    """Both experiments at std 0.5 (σ√n = 4): step-0 gradient norms near 4^(L−1) ≈ 4·10⁶ with
    cross-entropy and near 4^(2L−1) ≈ 7·10¹³ with the squared loss (a factor 4^L ≈ 10⁷ apart)."""
    quick = ["debug=limit", "trainer.max_epochs=1", "callbacks.progress_bar=null"]
    grads = {}
    for name in ("deep_linear", "deep_linear_squared"):
        # both diverge at step 1 (the divergence guard stops them, exit 1) after logging step 0
        proc = run_cli(
            [
                f"+experiment={name}",
                "init=normal",
                "init.std=0.5",
                *quick,
                f"hydra.run.dir={tmp_path / name}",
            ],
            check=False,
        )
        assert "the training loss became" in proc.stderr, proc.stderr[-2000:]
        diag = step_zero_diagnostics(tmp_path / name)
        grads[name] = diag["diag/grad_norm/layer_0"]
    assert 1e5 < grads["deep_linear"] < 1e9
    assert 1e12 < grads["deep_linear_squared"] < 1e16
    assert grads["deep_linear_squared"] > 1e5 * grads["deep_linear"]
