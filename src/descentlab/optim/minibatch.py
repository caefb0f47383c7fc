"""The minibatch gradient as an estimate of the full-batch gradient.

The lecture: the loss over all n samples, L(w) = (1/n) Σ_i ℓ(y_i, ŷ_i), versus the loss
over a sample S, L̃(w) = (1/|S|) Σ_{i∈S} ℓ(y_i, ŷ_i); SGD steps along ∇L̃(w). Two facts
make that work, both tested in ``tests/test_lecture.py`` and plotted in notebook 02:

- over one epoch of equal batches drawn without replacement, the batches partition the
  data, so the mean of the epoch's minibatch gradients is exactly ∇L(w);
- for one batch of |S| samples drawn without replacement,

      E‖∇L̃_S − ∇L‖² = (σ²/|S|) · (n − |S|)/(n − 1),   σ² = (1/n) Σ_i ‖∇ℓ_i − ∇L‖²,

  about σ²/|S| while |S| ≪ n (the second factor is the finite-population correction:
  it makes the full batch, |S| = n, exact).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap


def per_sample_gradients(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> Tensor:
    """∇ℓ_i for every sample i, all parameters flattened into one row: shape (n, d)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_of_one(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    grads = vmap(grad(loss_of_one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], dim=1)


def minibatch_gradient_variance(per_sample: Tensor, batch_size: int) -> float:
    """E‖∇L̃_S − ∇L‖² over batches S of ``batch_size`` samples drawn without replacement."""
    n = len(per_sample)
    sigma2 = (per_sample - per_sample.mean(0)).pow(2).sum(1).mean()
    return float(sigma2 / batch_size * (n - batch_size) / (n - 1))
