"""Check, while training, that the op table's gradients equal torch's native ones."""

from __future__ import annotations

import lightning as L
import torch
from torch.nn import functional as F

from descentlab.callbacks.diagnostics import log_now
from descentlab.errors import OpVerificationError


class VerifyOps(L.Callback):
    """Every ``every_n_steps`` training steps, recompute the batch's gradients twice —
    through the op table (the model as it trains) and through torch's native ops with
    the same weights — and compare them.

    Logs ``verify/max_abs_err`` = max |g_op − g_native| and ``verify/max_rel_err`` =
    max over parameters of max |g_op − g_native| / max |g_native|. Raises
    :class:`OpVerificationError` (stopping the run) when the relative error exceeds
    ``rtol`` and the absolute error exceeds ``atol``.

    Gradients are taken with ``torch.autograd.grad`` on the rank's own batch before the
    real step, so ``.grad`` and DDP's gradient synchronization are untouched; every rank
    checks its own shard.
    """

    def __init__(self, every_n_steps: int = 50, atol: float = 1e-5, rtol: float = 1e-4):
        self.every_n_steps = every_n_steps
        self.atol, self.rtol = atol, rtol
        self.checks = 0
        self.last: dict[str, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        net = pl_module.net
        if getattr(net, "ops", "native") != "optable":
            return
        from descentlab.autograd.layers import native_forward, op_cross_entropy

        x, y = batch
        params = [p for p in net.parameters() if p.requires_grad]
        was_training = net.training
        net.eval()  # dropout masks would differ between the two passes
        with torch.enable_grad():
            g_op = torch.autograd.grad(op_cross_entropy(net(x), y), params)
            g_native = torch.autograd.grad(F.cross_entropy(native_forward(net, x), y), params)
        net.train(was_training)
        abs_err = max((a - b).abs().max() for a, b in zip(g_op, g_native, strict=True))
        rel_err = max(
            (a - b).abs().max() / b.abs().max().clamp_min(1e-12)
            for a, b in zip(g_op, g_native, strict=True)
        )
        self.checks += 1
        self.last = {"max_abs_err": float(abs_err), "max_rel_err": float(rel_err)}
        # to the loggers at this very step (log_now), and into the callback metrics (what
        # metrics.json reports) without a second trip to the loggers (logger=False)
        log_now(trainer, {f"verify/{k}": v for k, v in self.last.items()})
        for key, value in (("max_abs_err", abs_err), ("max_rel_err", rel_err)):
            pl_module.log(f"verify/{key}", value, on_step=True, on_epoch=False, logger=False)
        if abs_err > self.atol and rel_err > self.rtol:
            raise OpVerificationError(
                f"op-table gradients differ from native autograd at step {trainer.global_step} "
                f"on rank {trainer.global_rank}: max abs err {float(abs_err):.3g}, max rel err "
                f"{float(rel_err):.3g} (tolerance atol={self.atol}, rtol={self.rtol})"
            )

    def on_train_end(self, trainer, pl_module) -> None:
        # One line per rank, so that a multi-process run shows every rank was checked.
        if self.checks:
            print(
                f"verify_ops: rank {trainer.global_rank} passed {self.checks} checks, last max abs err "
                f"{self.last['max_abs_err']:.3g}, max rel err {self.last['max_rel_err']:.3g}",
                flush=True,
            )

    def state_dict(self) -> dict:
        return {"checks": self.checks}

    def load_state_dict(self, state_dict: dict) -> None:
        self.checks = state_dict.get("checks", 0)
