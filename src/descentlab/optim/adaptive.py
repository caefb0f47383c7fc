"""An adaptive learning rate: divide by the root of accumulated squared gradients."""

from __future__ import annotations

from typing import Annotated

import torch

from descentlab.errors import ParameterError
from descentlab.optim.base import (
    LectureOptimizer,
    adaptive_step,
    centered_square_norm,
    parameter_name,
)
from descentlab.rules import OPTIMIZER, SCOPE, checked


def check_no_one_element_tensors(group: dict, group_index: int) -> None:
    """scope=tensor on a 1-element tensor: its centered norm is 0 at every step, always."""
    for index, p in enumerate(group["params"]):
        if p.numel() == 1:
            raise ParameterError(
                "scope",
                "tensor",
                f"global or coordinate: {parameter_name(group, index, group_index)} has one "
                "element, so ‖g − mean(g)‖ = 0 at every step and s_t would stay 0",
            )


class Adaptive(LectureOptimizer):
    r"""The lecture's adaptive learning rate, over the notes' one parameter vector w ∈ R^d:

    .. math::
        g_t \leftarrow \nabla\mathcal L(w_t),\qquad
        s_t \leftarrow s_{t-1} + \lVert g_t - \operatorname{mean}(g_t)\rVert_2^2,\qquad
        w_{t+1} \leftarrow w_t - \frac{\eta}{\sqrt{s_t} + \epsilon}\, g_t,\qquad s_0 = 0.

    ``scope`` says what "the vector" is:

    - ``global`` (default, the notes): every parameter of the optimizer, all tensors
      concatenated into one g_t ∈ R^d: one mean, one centered norm, one scalar s_t, so
      every weight shares one step size η/(√s_t + ε), which shrinks as gradient "energy"
      accumulates;
    - ``tensor``: each parameter tensor is its own vector (its own mean, norm and s_t);
    - ``coordinate``: every entry keeps its own s_t ← s_{t−1} + g_t ⊙ g_t (no centering),
      which is AdaGrad and equals ``torch.optim.Adagrad(lr=η, eps=ε, weight_decay=λ)``.

    The centered norm can be 0 while g_t ≠ 0: when all entries of the vector are equal.
    Then s_t = 0 and the literal step η g_t/ε is enormous (w: 1 → −2·10⁹ in one step at
    η = 0.1). Two guards: ``scope=tensor`` refuses a 1-element tensor (always in that
    case) with a one-line ConfigError naming it; and wherever s_t is still 0 the step is
    0, not η g_t/ε (:func:`~descentlab.optim.base.adaptive_step`). Once s_t > 0 the rule
    runs as written; a centered norm much smaller than ‖g_t‖ still gives large first
    steps, which is the notes' rule.

    Args:
        lr: η.  eps: ε.  weight_decay: λ, coupled (g ← ∇L + λw, torch's meaning).
        scope: ``global``, ``tensor`` or ``coordinate``, the same for every group.
        foreach: ``torch._foreach_*`` over all tensors (null: for scope global and
            coordinate; true insists) or a loop (false).
    """

    @checked
    def __init__(
        self,
        params,
        lr: Annotated[float, OPTIMIZER["lr"]] = 0.1,
        eps: Annotated[float, OPTIMIZER["eps"]] = 1e-10,
        weight_decay: Annotated[float, OPTIMIZER["weight_decay"]] = 0.0,
        scope: Annotated[str, SCOPE] = "global",
        foreach: Annotated[bool | None, OPTIMIZER["foreach"]] = None,
    ):
        super().__init__(
            params,
            {
                "lr": lr,
                "eps": eps,
                "weight_decay": weight_decay,
                "scope": scope,
                "foreach": foreach,
            },
        )

    def shared_keys(self) -> tuple[str, ...]:
        return ("scope",)

    def check_group(self, group: dict, group_index: int) -> None:
        if group["scope"] == "tensor":
            check_no_one_element_tensors(group, group_index)

    def begin_step(self, pairs) -> None:
        if self.param_groups[0]["scope"] != "global":
            return
        grads = [g for _, g in pairs]
        if "s" not in self.global_state:
            self.global_state["s"] = torch.zeros((), dtype=grads[0].dtype, device=grads[0].device)
        self.global_state["s"].add_(centered_square_norm(grads))  # s_t, one for all of w

    def update(self, p, g, state, group) -> None:
        scope = group["scope"]
        if scope == "global":
            s = self.global_state["s"]
        else:
            if "s" not in state:
                state["s"] = (
                    torch.zeros_like(p)
                    if scope == "coordinate"
                    else torch.zeros((), dtype=p.dtype, device=p.device)
                )
            s = state["s"]
            if scope == "coordinate":
                s.addcmul_(g, g)
            else:
                s.add_(centered_square_norm([g]))
        adaptive_step(p, g, s, group["lr"], group["eps"])

    def supports_foreach(self, group: dict) -> bool:
        return group["scope"] in ("global", "coordinate")

    def update_all(self, params, grads, states, group) -> None:
        lr, eps = group["lr"], group["eps"]
        steps = torch._foreach_mul(grads, lr)  # η g, then / (√s + ε) as in adaptive_step
        if group["scope"] == "global":
            s = self.global_state["s"]
            torch._foreach_div_(steps, torch.where(s > 0, s.sqrt() + eps, torch.inf))
        else:
            for p, state in zip(params, states, strict=True):
                if "s" not in state:
                    state["s"] = torch.zeros_like(p)
            sums = [state["s"] for state in states]
            torch._foreach_addcmul_(sums, grads, grads)
            roots = torch._foreach_sqrt(sums)
            torch._foreach_add_(roots, eps)
            # where s = 0 the step is 0 (adaptive_step): a division by ∞ there
            denominators = [
                torch.where(s > 0, r, torch.inf) for s, r in zip(sums, roots, strict=True)
            ]
            torch._foreach_div_(steps, denominators)
        torch._foreach_sub_(params, steps)
