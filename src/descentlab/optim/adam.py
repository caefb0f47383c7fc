"""Adam: momentum on the gradient and an adaptive rate from its second moment, both."""

from __future__ import annotations

import logging
from typing import Annotated

import torch

from descentlab.errors import ParameterError
from descentlab.optim.adaptive import check_no_one_element_tensors
from descentlab.optim.base import (
    LectureOptimizer,
    adaptive_step,
    centered_square_norm,
)
from descentlab.rules import OPTIMIZER, checked

log = logging.getLogger(__name__)
LECTURE_FORM_WARNING = (
    "optimizer.form=lecture is the notes' literal Adam: its bias correction compounds inside "
    "the recursion, s_t overflows (float32: about step 20 at beta=0.999) and every update "
    "is then exactly 0; use form=standard to train"
)
_warned = False


def warn_lecture_form_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(LECTURE_FORM_WARNING)


class Adam(LectureOptimizer):
    r"""Adam (adaptive moment estimation), in the lecture's symbols η, μ, β, ε.

    ``form="standard"`` (the default, Kingma & Ba 2015) keeps raw moving averages and
    corrects their bias only where they are used:

    .. math::
        v_t \leftarrow \mu v_{t-1} + (1-\mu) g_t,\qquad
        s_t \leftarrow \beta s_{t-1} + (1-\beta) g_t \odot g_t,

        \hat v_t = \frac{v_t}{1-\mu^t},\quad \hat s_t = \frac{s_t}{1-\beta^t},\qquad
        w_{t+1} \leftarrow w_t - \frac{\eta}{\sqrt{\hat s_t} + \epsilon}\,\hat v_t .

    Why 1−μ^t: with v_0 = 0, v_t = (1−μ) Σ_k μ^{t−k} g_k, whose weights sum to 1−μ^t,
    so for constant gradients v_t = (1−μ^t) g: dividing by 1−μ^t removes the pull
    towards the zero start. This equals ``torch.optim.Adam(lr=η, betas=(μ, β), eps=ε,
    weight_decay=λ)``; s_t is per coordinate (``scope`` must be ``coordinate`` or unset).

    ``form="lecture"`` is the notes' literal transcription: the correction sits inside
    the recursion and s_t uses the centered norm c_t = ‖g_t − mean(g_t)‖² over ``scope``
    (``global``, the default: all parameters as one vector, as in the notes; ``tensor``:
    one s per tensor; ``coordinate``: c_t = g_t ⊙ g_t per entry):

    .. math::
        v_t \leftarrow \frac{\mu v_{t-1} + (1-\mu) g_t}{1-\mu^t},\qquad
        s_t \leftarrow \frac{\beta s_{t-1} + (1-\beta)\, c_t}{1-\beta^t},\qquad
        w_{t+1} \leftarrow w_t - \frac{\eta}{\sqrt{s_t} + \epsilon}\, v_t .

    **It stops learning.** The corrected s_{t−1} is fed back, so every early step multiplies
    it by β/(1−β^t) > 1 (for t < ln(1−β)/ln β ≈ 6904 at β = 0.999): s_t overflows float32 at
    about step 20, and from then on every update is exactly 0. The derivation, with its
    numbers, is in ``docs/lecture.md`` (Optimizers); ``tests/test_optim.py`` checks the
    bound step by step. The first moment compounds too (by μ/(1−μ^t) > 1 for t < 22 at
    μ = 0.9: under a constant gradient g it peaks at ≈ 3.9·10³ g at t = 21, tested), but
    stays finite. Selecting this form logs one warning.

    As in :class:`~descentlab.optim.adaptive.Adaptive`, where s_t = 0 (a centered norm
    of 0 at step 1) the step is 0 rather than η v/ε, and ``scope=tensor`` refuses
    1-element tensors.

    Args:
        lr: η.  mu: μ (first moment).  beta: β (second moment).  eps: ε.
        weight_decay: λ, coupled (g ← ∇L + λw, torch's meaning).
        form: ``standard`` or ``lecture``.
        scope: where s_t is accumulated for ``form=lecture``: ``global`` (its default),
            ``tensor`` or ``coordinate``; ``form=standard`` is per coordinate.
        foreach: ``torch._foreach_*`` over all tensors (null: for form=standard; true
            insists) or a loop (false).
    """

    @checked
    def __init__(
        self,
        params,
        lr: Annotated[float, OPTIMIZER["lr"]] = 1e-3,
        mu: Annotated[float, OPTIMIZER["mu"]] = 0.9,
        beta: Annotated[float, OPTIMIZER["beta"]] = 0.999,
        eps: Annotated[float, OPTIMIZER["eps"]] = 1e-8,
        weight_decay: Annotated[float, OPTIMIZER["weight_decay"]] = 0.0,
        form: Annotated[str, OPTIMIZER["form"]] = "standard",
        scope: Annotated[str | None, OPTIMIZER["scope"]] = None,
        foreach: Annotated[bool | None, OPTIMIZER["foreach"]] = None,
    ):
        if scope is None:
            scope = "global" if form == "lecture" else "coordinate"
        if form == "standard" and scope != "coordinate":
            raise ParameterError(
                "scope",
                scope,
                "coordinate or null with form=standard "
                "(standard Adam's s_t is per coordinate; scope applies to form=lecture)",
            )
        defaults = {
            "lr": lr,
            "mu": mu,
            "beta": beta,
            "eps": eps,
            "weight_decay": weight_decay,
            "form": form,
            "scope": scope,
            "foreach": foreach,
        }
        super().__init__(params, defaults)
        if form == "lecture":
            warn_lecture_form_once()

    def shared_keys(self) -> tuple[str, ...]:
        # the global s_t is one recursion in β over all parameters
        return ("form", "scope", "beta") if self.defaults["scope"] == "global" else ("form",)

    def check_group(self, group: dict, group_index: int) -> None:
        if group["form"] == "lecture" and group["scope"] == "tensor":
            check_no_one_element_tensors(group, group_index)

    def begin_step(self, pairs) -> None:
        group = self.param_groups[0]
        if group["form"] != "lecture" or group["scope"] != "global":
            return
        beta, state = group["beta"], self.global_state
        if "s" not in state:
            g0 = pairs[0][1]
            state["t"], state["s"] = 0, torch.zeros((), dtype=g0.dtype, device=g0.device)
        state["t"] += 1
        c = centered_square_norm([g for _, g in pairs])
        state["s"].mul_(beta).add_(c, alpha=1 - beta).div_(1 - beta ** state["t"])

    def update(self, p, g, state, group) -> None:
        mu, beta, eps, lr = group["mu"], group["beta"], group["eps"], group["lr"]
        scope = group["scope"]
        if "t" not in state:
            state["t"] = torch.zeros((), dtype=torch.float64)
            state["v"] = torch.zeros_like(p)
            if scope != "global":
                state["s"] = (
                    torch.zeros((), dtype=p.dtype, device=p.device)
                    if scope == "tensor"
                    else torch.zeros_like(p)
                )
        state["t"] += 1
        t = float(state["t"])
        v = state["v"]
        if group["form"] == "lecture":
            v.mul_(mu).add_(g, alpha=1 - mu).div_(1 - mu**t)
            if scope == "global":
                s = self.global_state["s"]
            else:
                c = centered_square_norm([g]) if scope == "tensor" else g * g
                s = state["s"]
                s.mul_(beta).add_(c, alpha=1 - beta).div_(1 - beta**t)
            adaptive_step(p, v, s, lr, eps)
        else:
            s = state["s"]
            v.mul_(mu).add_(g, alpha=1 - mu)
            s.mul_(beta).addcmul_(g, g, value=1 - beta)
            v_hat = v / (1 - mu**t)
            s_hat = s / (1 - beta**t)
            p.sub_(lr * v_hat / (s_hat.sqrt() + eps))

    def supports_foreach(self, group: dict) -> bool:
        return group["form"] == "standard"

    def update_all(self, params, grads, states, group) -> None:
        """The standard form's ``update`` over all tensors: the same operations, in order."""
        mu, beta, eps, lr = group["mu"], group["beta"], group["eps"], group["lr"]
        for p, state in zip(params, states, strict=True):
            if "t" not in state:
                state["t"] = torch.zeros((), dtype=torch.float64)
                state["v"] = torch.zeros_like(p)
                state["s"] = torch.zeros_like(p)
            state["t"] += 1
        steps = [float(state["t"]) for state in states]  # t lives on the host: no device read
        v, s = [state["v"] for state in states], [state["s"] for state in states]
        torch._foreach_mul_(v, mu)
        torch._foreach_add_(v, grads, alpha=1 - mu)
        torch._foreach_mul_(s, beta)
        torch._foreach_addcmul_(s, grads, grads, value=1 - beta)
        v_hat = torch._foreach_div(v, [1 - mu**t for t in steps])
        s_hat = torch._foreach_div(s, [1 - beta**t for t in steps])
        denominators = torch._foreach_sqrt(s_hat)
        torch._foreach_add_(denominators, eps)
        updates = torch._foreach_mul(v_hat, lr)
        torch._foreach_div_(updates, denominators)
        torch._foreach_sub_(params, updates)
