"""Throughput of the training loop: samples per second and achieved FLOP/s, per epoch."""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)
PREFIX = "perf/"


def flops_per_sample(net: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward and backward pass of ``net`` on one sample ``x[:1]``.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions: 2
    FLOPs per multiply-add; elementwise ops are not counted), on the eager network in
    eval mode (no dropout draw, no BatchNorm statistics update) with gradients taken by
    ``torch.autograd.grad``, so training's ``.grad`` and random state are untouched. The
    backward pass is about twice the forward (a gradient for the weights and one for the
    layer's input), so the total is about 3× the forward count Lightning's model summary
    prints.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    first = next(net.parameters(), None)
    sample = x[:1]
    if first is not None and sample.is_floating_point():
        sample = sample.to(first.dtype)
    modes = {module: module.training for module in net.modules()}
    net.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            # .forward, not __call__: model.compile's compiled call is not what is counted
            output = net.forward(sample)
            if params:
                torch.autograd.grad(output.float().sum(), params, allow_unused=True)
    finally:
        for module, training in modes.items():
            module.training = training
    return int(counter.get_total_flops())


class Throughput(L.Callback):
    """Logs ``perf/samples_per_s`` and ``perf/flops_per_s`` at the end of each training epoch.

    samples/s = (training samples of the epoch, all ranks) / (wall time from the start of its
    first training batch to the end of its last), which includes loading the data and the
    optimizer step but not validation. The time is read on the host at every batch end and
    the device is synchronized once per epoch, at the last batch (an asynchronous CUDA step
    would otherwise end "early"): no synchronization inside the training steps.

    FLOP/s = samples/s × FLOPs per sample (:func:`flops_per_sample`, counted once at the
    first batch): the rate of useful arithmetic achieved, to set against what the device can
    do (``make bench`` measures this machine's matmul ceiling).

    ``summary()`` gives the run's figures for ``metrics.json``: the median over the epochs
    after the first (the first pays for warm-up and ``model.compile``), or the only epoch.
    """

    def __init__(self) -> None:
        self.flops_per_sample: int | None = None
        self.epoch_rates: list[float] = []
        self._started: float | None = None
        self._ended: float | None = None
        self._samples = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started, self._ended, self._samples = None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._started is None:
            self._started = time.perf_counter()
        if self.flops_per_sample is None and isinstance(batch, (tuple, list)) and len(batch[0]):
            net = getattr(pl_module, "net", pl_module)
            try:
                self.flops_per_sample = flops_per_sample(net, batch[0])
            except Exception as error:  # noqa: BLE001 - a count is a nicety, never a failure
                self.flops_per_sample = 0
                rank_zero_only(log.warning)("FLOPs per sample not counted: %s", error)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if isinstance(batch, (tuple, list)):
            self._samples += len(batch[-1])
        if batch_idx + 1 == trainer.num_training_batches and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # once per epoch: the epoch's work is done
        self._ended = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._started is None or self._ended is None or self._ended <= self._started:
            return
        rate = self._samples * trainer.world_size / (self._ended - self._started)
        self.epoch_rates.append(rate)
        values = {f"{PREFIX}samples_per_s": rate}
        if self.flops_per_sample:
            values[f"{PREFIX}flops_per_s"] = rate * self.flops_per_sample
        # equal on every rank by construction of world_size × own count: no sync needed
        pl_module.log_dict(values, on_epoch=True, sync_dist=False)

    def summary(self) -> dict[str, Any]:
        """``perf/samples_per_s``, ``perf/flops_per_sample``, ``perf/flops_per_s`` of the run."""
        if not self.epoch_rates:
            return {}
        rates = self.epoch_rates[1:] or self.epoch_rates
        rate = statistics.median(rates)
        fields: dict[str, Any] = {f"{PREFIX}samples_per_s": rate}
        if self.flops_per_sample:
            fields[f"{PREFIX}flops_per_sample"] = self.flops_per_sample
            fields[f"{PREFIX}flops_per_s"] = rate * self.flops_per_sample
        return fields

    def state_dict(self) -> dict:
        return {"epoch_rates": list(self.epoch_rates), "flops_per_sample": self.flops_per_sample}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epoch_rates = list(state_dict.get("epoch_rates", []))
        self.flops_per_sample = state_dict.get("flops_per_sample")


def summary_of(trainer) -> dict[str, Any]:
    """The run's throughput figures, from its :class:`Throughput` callback (``{}`` if none)."""
    for callback in getattr(trainer, "callbacks", []):
        if isinstance(callback, Throughput):
            return callback.summary()
    return {}
