"""torch's optimizers with their fastest exact-enough step: ``fused=True`` where torch has it."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch


def build_optimizer(factory: Callable, params) -> torch.optim.Optimizer:
    """``factory(params=params)``, with torch's fused kernel when the config leaves it open.

    A torch optimizer config that says ``fused: null`` (``optimizer=torch_adam``,
    ``torch_adamw``, ``torch_sgd``) asks for the fastest step torch has for the parameters'
    device: ``fused=True``, one kernel that updates every tensor (CUDA, the CPU, MPS). On 2
    CPU cores it makes ``torch.optim.Adam``'s step ≈ 3× faster than its per-tensor loop for
    the default MLP (``make bench``); its results equal the loop's to float rounding
    (``tests/test_optim.py``). Where torch has no fused kernel (another device or dtype) it
    raises, and the optimizer is built with torch's own default instead. ``fused: false``
    (or ``foreach: true``) keeps torch's choice; our lecture optimizers take no ``fused``.
    """
    params = list(params)
    keywords = factory.keywords if isinstance(factory, functools.partial) else {}
    if keywords.get("fused", False) is None and not keywords.get("foreach"):
        try:
            return factory(params=params, fused=True)
        except RuntimeError:  # "`fused=True` requires all the params to be ... supported devices"
            pass
    return factory(params=params)
