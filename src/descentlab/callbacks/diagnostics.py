"""Per-layer activation variance and gradient norm: vanishing and exploding, made visible."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn


def linear_layers(net: nn.Module) -> list[nn.Module]:
    """The weight layers of ``net`` in order (Linear, OpLinear, convolutions)."""
    return [
        m
        for m in net.modules()
        if isinstance(getattr(m, "weight", None), Tensor) and m.weight.ndim >= 2
    ]


def hidden_activations(net: nn.Module) -> list[nn.Module]:
    """The module right after each hidden weight layer of a sequential net: its activation."""
    children = list(net.children())
    weights = [i for i, m in enumerate(children) if m in set(linear_layers(net))]
    return [children[i + 1] for i in weights[:-1] if i + 1 < len(children)]


@torch.no_grad()
def activation_variances(net: nn.Module, x: Tensor) -> list[float]:
    """var(z^(l)) of every hidden layer's activation for the input batch ``x``.

    The lecture: var(z^(L)) = n_in · var(w) · var(z^(L−1)). If n_in · var(w) ≠ 1 these
    multiply up with depth: the ratio of the last to the first grows or shrinks
    geometrically.
    """
    recorded: list[float] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: recorded.append(out.var().item()))
        for m in hidden_activations(net)
    ]
    try:
        net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return recorded


def log_now(trainer, metrics: dict[str, float]) -> None:
    """Write ``metrics`` to every logger at the current step (loggers write on rank 0)."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)


class Diagnostics(L.Callback):
    """Logs, every ``every_n_steps`` training steps:

    - ``diag/act_var/layer_<l>``: variance of hidden layer l's activations on the batch;
    - ``diag/grad_norm/layer_<l>``: ‖∂L/∂W^(l)‖₂ of weight layer l.

    They go straight to the loggers at the current step (Lightning would otherwise
    only pass step values through every ``log_every_n_steps``); this reads them on the
    host, once every ``every_n_steps`` steps.
    """

    def __init__(self, every_n_steps: int = 10):
        self.every_n_steps = every_n_steps
        self._hooks: list = []
        self._variances: dict[int, Tensor] = {}

    def _due(self, trainer) -> bool:
        return trainer.global_step % self.every_n_steps == 0

    def on_fit_start(self, trainer, pl_module) -> None:
        def record(index):
            def hook(_module, _inputs, output):
                if pl_module.training and self._due(trainer):
                    self._variances[index] = output.detach().float().var()

            return hook

        for index, module in enumerate(hidden_activations(pl_module.net)):
            self._hooks.append(module.register_forward_hook(record(index)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self._due(trainer):
            return
        metrics = {f"diag/act_var/layer_{i}": float(v) for i, v in self._variances.items()}
        for index, layer in enumerate(linear_layers(pl_module.net)):
            if layer.weight.grad is not None:
                metrics[f"diag/grad_norm/layer_{index}"] = float(layer.weight.grad.norm())
        self._variances.clear()
        log_now(trainer, metrics)

    def on_fit_end(self, trainer, pl_module) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
