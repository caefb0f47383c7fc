"""An adaptive learning rate: divide by the root of accumulated squared gradients."""

from __future__ import annotations

import torch

from descentlab.optim.base import LectureOptimizer, check_hyperparameters


class Adaptive(LectureOptimizer):
    r"""The lecture's adaptive learning rate:

    .. math::
        s_t \leftarrow s_{t-1} + \lVert g_t - \operatorname{mean}(g_t)\rVert_2^2,\qquad
        w_{t+1} \leftarrow w_t - \frac{\eta}{\sqrt{s_t} + \epsilon}\, g_t,\qquad s_0 = 0.

    As written, s_t is one number per parameter tensor (the squared norm of the
    gradient's deviation from its mean), so each tensor gets its own step size that
    shrinks as gradient "energy" accumulates.

    With ``per_coordinate=True`` every coordinate keeps its own accumulator,

    .. math::  s_t \leftarrow s_{t-1} + g_t \odot g_t,

    which is AdaGrad and equals ``torch.optim.Adagrad(lr=η, eps=ε)``.

    Args:
        lr: η.  eps: ε.  weight_decay: λ, coupled L2.  per_coordinate: AdaGrad's form.
    """

    def __init__(self, params, lr: float = 0.1, eps: float = 1e-10, weight_decay: float = 0.0,
                 per_coordinate: bool = False):  # fmt: skip
        check_hyperparameters(lr, weight_decay)
        super().__init__(
            params,
            {"lr": lr, "eps": eps, "weight_decay": weight_decay, "per_coordinate": per_coordinate},
        )

    def update(self, p, g, state, group) -> None:
        if "s" not in state:
            state["s"] = (
                torch.zeros_like(p)
                if group["per_coordinate"]
                else torch.zeros((), dtype=p.dtype, device=p.device)
            )
        s = state["s"]
        if group["per_coordinate"]:
            s.addcmul_(g, g)
        else:
            s.add_((g - g.mean()).pow(2).sum())
        p.sub_(group["lr"] * g / (s.sqrt() + group["eps"]))
