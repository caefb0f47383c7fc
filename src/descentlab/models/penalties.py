"""Terms added to the training loss: the extension point for regularizers.

The TaskModule minimizes ``data loss + Σ_k term_k(net)``; each term is a small class with a
``strength`` (λ) and a ``__call__(net) -> Tensor``, configured under ``model.penalties.NAME``
(see ``configs/regularizer/l1.yaml``). Adding a regularizer is one class here and one YAML
file. ``train/penalty`` logs the sum of the terms, averaged over the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import torch
from torch import Tensor, nn

from descentlab.rules import NON_NEGATIVE, checked


def weight_tensors(net: nn.Module) -> Iterator[Tensor]:
    """The trainable weight matrices and kernels (``ndim >= 2``).

    Biases and normalization scales/shifts (1-D) are left out: penalizing them does not
    reduce the model's capacity to fit, it only shifts its outputs.
    """
    return (p for p in net.parameters() if p.requires_grad and p.ndim >= 2)


class WeightPenalty:
    """``λ · Σ_W f(W)`` over the weight tensors; subclasses define ``f`` (:meth:`of`)."""

    name = "penalty"

    @checked
    def __init__(self, strength: Annotated[float, NON_NEGATIVE]):
        self.strength = float(strength)

    def of(self, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, net: nn.Module) -> Tensor:
        terms = [self.of(w) for w in weight_tensors(net)]
        total = torch.stack(terms).sum() if terms else torch.zeros(())
        return self.strength * total

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strength={self.strength})"


class L2Penalty(WeightPenalty):
    """The lecture's ``λ‖w‖² = λ Σ_W Σ_ij W_ij²``; its gradient is ``2λW``.

    Not an optimizer's ``weight_decay`` (torch's ``g ← ∇L + λw`` on every parameter): with
    plain SGD, strength λ follows ``torch.optim.SGD(weight_decay=2λ)`` on the weights only.
    Set by ``model.l2_penalty`` (``regularizer=weight_decay``).
    """

    name = "l2"

    def of(self, weight: Tensor) -> Tensor:
        return weight.pow(2).sum()


class L1Penalty(WeightPenalty):
    """``λ‖w‖₁ = λ Σ_W Σ_ij |W_ij|``; its (sub)gradient is ``λ·sign(W)``: every weight is
    pulled toward 0 by the same amount, so the ones the data does not need end near 0
    (sparser weights), where L2's pull ``2λW`` fades as a weight shrinks. ``regularizer=l1``."""

    name = "l1"

    def of(self, weight: Tensor) -> Tensor:
        return weight.abs().sum()
