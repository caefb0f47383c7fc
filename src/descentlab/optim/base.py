"""What the lecture's optimizers share: checked hyperparameters and coupled weight decay."""

from __future__ import annotations

import torch
from torch import Tensor

from descentlab.errors import ConfigError


def check_hyperparameters(lr: float, weight_decay: float, **unit_interval: float) -> None:
    """η > 0, λ ≥ 0, and every momentum-like coefficient in [0, 1)."""
    if not lr > 0:
        raise ConfigError("optimizer.lr", lr, "a positive number")
    if weight_decay < 0:
        raise ConfigError("optimizer.weight_decay", weight_decay, "a number >= 0")
    for name, value in unit_interval.items():
        if not 0 <= value < 1:
            raise ConfigError(f"optimizer.{name}", value, "a number in [0, 1)")


def gradient(p: Tensor, weight_decay: float) -> Tensor:
    """g = ∇L(w) + λ w: coupled L2 decay, the gradient of L(w) + (λ/2)‖w‖².

    Coupled means the decay term goes through the optimizer's own rescaling (momentum
    averaging, the adaptive denominator), unlike AdamW's decoupled ``w ← w − ηλw``.
    """
    g = p.grad
    return g.add(p, alpha=weight_decay) if weight_decay != 0 else g


class LectureOptimizer(torch.optim.Optimizer):
    """Base: iterates over parameters with gradients; subclasses implement ``update``."""

    def update(self, p: Tensor, g: Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self.update(p, gradient(p, group["weight_decay"]), self.state[p], group)
        return loss
