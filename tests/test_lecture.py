"""The rest of the lecture, each statement checked: the worked example's every intermediate,
∂L/∂u = Jᵀ ∂L/∂v, minibatch vs full batch, and dropout's scaling."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.autograd.functional import jacobian

from descentlab.autograd import ops
from descentlab.autograd.worked_example import (
    NODES,
    graph_with_torch,
    intermediates_by_autograd,
    intermediates_by_hand,
)
from descentlab.data.tensor_data import TensorBatches
from descentlab.models.mlp import MLP
from descentlab.optim.minibatch import minibatch_gradient_variance, per_sample_gradients


# ------------------------------------------------ the worked example, node by node
@pytest.mark.parametrize(
    "w,b,x,y,lam",
    [
        (0.7, -0.3, 1.5, 1.0, 0.1),
        (-1.2, 0.4, -2.0, 0.0, 0.5),
        (3.0, 2.0, 0.5, 1.0, 0.0),
    ],
)
def test_every_intermediate_by_hand_op_table_and_torch_autograd_agree(w, b, x, y, lam):
    hand = intermediates_by_hand(w, b, x, y, lam)
    table = intermediates_by_autograd(w, b, x, y, lam)
    torch_ = intermediates_by_autograd(w, b, x, y, lam, graph=graph_with_torch)
    assert set(hand) == set(table) == set(torch_) == set(NODES)
    for node in NODES:
        assert table[node] == pytest.approx(hand[node], abs=1e-12), node
        assert torch_[node] == pytest.approx(hand[node], abs=1e-12), node
    # the lecture's first row: ∂L/∂L = 1, ∂L/∂r = λ, ∂L/∂l = 1
    assert (hand["L"], hand["r"], hand["l"]) == (1.0, lam, 1.0)
    u = 1 / (1 + math.exp(-(w * x + b)))
    assert hand["u"] == pytest.approx(u - y, abs=1e-15)
    if lam:  # the λ·2w path through r counts
        assert hand["w"] != pytest.approx(hand["z"] * x)


# ------------------------------------------------ ∂L/∂u = Jᵀ ∂L/∂v
def test_matvec_backward_is_the_jacobian_transposed_times_the_upstream_gradient():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 7, dtype=torch.float64, generator=gen)
    u = torch.randn(7, dtype=torch.float64, generator=gen, requires_grad=True)
    upstream = torch.randn(5, dtype=torch.float64, generator=gen)  # ∂L/∂v
    (table,) = torch.autograd.grad(ops.matvec(u, weight), u, upstream)  # the op table's backward
    J = jacobian(lambda u: nn.functional.linear(u, weight), u)  # [∂v_i/∂u_j], torch's own
    assert J.shape == (5, 7) and torch.allclose(J, weight)  # for v = W u, J = W
    assert torch.allclose(table, J.T @ upstream, atol=1e-12)


def test_a_layer_v_equals_sigma_of_wu_backward_is_its_jacobian_transposed():
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(4, 6, dtype=torch.float64, generator=gen)
    u = torch.randn(3, 6, dtype=torch.float64, generator=gen, requires_grad=True)  # a batch
    upstream = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    (table,) = torch.autograd.grad(ops.sigmoid(ops.matvec(u, weight)), u, upstream)
    for row in range(3):  # each sample's Jacobian: diag(σ'(W u)) W
        J = jacobian(lambda v: torch.sigmoid(weight @ v), u[row].detach())
        s = torch.sigmoid(weight @ u[row].detach())
        assert torch.allclose(J, torch.diag(s * (1 - s)) @ weight, atol=1e-12)
        assert torch.allclose(table[row], J.T @ upstream[row], atol=1e-12)


# ------------------------------------------------ minibatch vs full batch
N = 240  # divisible by every batch size below


def digits_problem():
    digits = load_digits()
    x = torch.tensor(digits.images[:N], dtype=torch.float64).unsqueeze(1) / 16
    y = torch.tensor(digits.target[:N])
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 10, [16], activation="tanh").double()
    return model, x, y


def gradient(model, x, y) -> torch.Tensor:
    loss = nn.functional.cross_entropy(model(x), y)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])


@pytest.mark.parametrize("batch_size", [1, 8, 48, N])
def test_one_epoch_of_minibatch_gradients_averages_to_the_full_batch_gradient(batch_size):
    model, x, y = digits_problem()
    full = gradient(model, x, y)
    batches = list(TensorBatches(x, y, batch_size, shuffle=True, seed=3))  # the template's own
    assert len(batches) == N // batch_size and all(len(b[1]) == batch_size for b in batches)
    grads = torch.stack([gradient(model, bx, by) for bx, by in batches])
    assert torch.allclose(grads.mean(0), full, rtol=0, atol=1e-12 * full.abs().max())
    if batch_size < N:  # ... while one minibatch alone is only an estimate
        assert (grads[0] - full).abs().max() > 1e-3 * full.abs().max()


def test_per_sample_gradients_average_to_the_batch_gradient():
    model, x, y = digits_problem()
    per_sample = per_sample_gradients(model, nn.functional.cross_entropy, x, y)
    idx = torch.tensor([3, 17, 100, 201, 5])
    assert torch.allclose(per_sample[idx].mean(0), gradient(model, x[idx], y[idx]), atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 4, 16, 64])
def test_minibatch_gradient_variance_falls_as_one_over_the_batch_size(batch_size):
    """E‖∇L̃_S − ∇L‖² = σ²/|S| · (n−|S|)/(n−1) (drawn without replacement), checked by
    Monte Carlo within 5 standard errors of the Monte Carlo mean."""
    model, x, y = digits_problem()
    per_sample = per_sample_gradients(model, nn.functional.cross_entropy, x, y)
    full = per_sample.mean(0)
    gen = torch.Generator().manual_seed(batch_size)
    draws = torch.stack(
        [
            (per_sample[torch.randperm(N, generator=gen)[:batch_size]].mean(0) - full).pow(2).sum()
            for _ in range(4000)
        ]
    )
    predicted = minibatch_gradient_variance(per_sample, batch_size)
    standard_error = float(draws.std() / math.sqrt(len(draws)))
    assert abs(float(draws.mean()) - predicted) < 5 * standard_error
    sigma2 = minibatch_gradient_variance(per_sample, 1)
    assert 0.7 < predicted * batch_size / sigma2 <= 1.0  # ≈ 1/|S| while |S| ≪ n


def test_the_full_batch_has_no_variance():
    model, x, y = digits_problem()
    per_sample = per_sample_gradients(model, nn.functional.cross_entropy, x, y)
    assert minibatch_gradient_variance(per_sample, N) == 0.0


# ------------------------------------------------ dropout: the lecture's m ⊙ σ(u) vs inverted
DROPOUT_N = 200_000


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_training_masks_are_zero_or_one_over_one_minus_p_and_drop_about_p(p):
    torch.manual_seed(0)
    out = nn.Dropout(p).train()(torch.ones(DROPOUT_N))
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)), rtol=1e-6, atol=0)
    dropped = 1 - kept.double().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / DROPOUT_N)  # 5 binomial SDs
    # the 1/(1−p) keeps the expectation: E[out] = 1 (5 SDs of the mean of DROPOUT_N draws)
    assert abs(out.double().mean().item() - 1) < 5 * math.sqrt(p / (1 - p) / DROPOUT_N)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_inverted_dropout_is_the_lectures_mask_scaled_by_one_over_one_minus_p(p):
    """PyTorch draws the lecture's m ∈ {0, 1} and returns m ⊙ v / (1−p) in training."""
    v = torch.rand(1000, dtype=torch.float64) + 0.5
    torch.manual_seed(7)
    m = (nn.functional.dropout(torch.ones_like(v), p) != 0).double()  # the mask it draws
    torch.manual_seed(7)
    assert torch.allclose(nn.functional.dropout(v, p), m * v / (1 - p), rtol=1e-12, atol=0)
    assert 0 < m.mean() < 1


def test_dropout_is_the_identity_in_eval():
    x = torch.randn(64, 1, 8, 8)
    model = MLP((1, 8, 8), 10, [32, 16], dropout=0.5).eval()
    dropouts = [m for m in model if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2
    assert all(torch.equal(d(x), x) for d in dropouts)
    assert torch.equal(model(x), model(x))


def test_the_mlps_dropout_scales_what_it_keeps_in_training():
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 10, [256], activation="sigmoid", dropout=0.2).train()
    seen = {}
    dropout = next(m for m in model if isinstance(m, nn.Dropout))
    dropout.register_forward_hook(lambda _m, inp, out: seen.update(v=inp[0], out=out))
    model(torch.rand(128, 1, 8, 8))
    ratio = seen["out"] / seen["v"]  # σ(u) > 0 everywhere
    kept = ratio != 0
    assert torch.allclose(ratio[kept], torch.full_like(ratio[kept], 1 / 0.8), rtol=1e-6)
    assert abs((~kept).double().mean().item() - 0.2) < 5 * math.sqrt(0.2 * 0.8 / ratio.numel())
