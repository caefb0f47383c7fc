"""Adam: momentum on the gradient and an adaptive rate from its second moment, both."""

from __future__ import annotations

import torch

from descentlab.errors import ConfigError
from descentlab.optim.base import LectureOptimizer, check_hyperparameters


class Adam(LectureOptimizer):
    r"""Adam (adaptive moment estimation), in the lecture's symbols μ, β, ε.

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
    weight_decay=λ)``.

    ``form="lecture"`` is the notes' literal transcription: the correction sits inside
    the recursion and s_t uses the centered norm (one scalar per tensor):

    .. math::
        v_t \leftarrow \frac{\mu v_{t-1} + (1-\mu) g_t}{1-\mu^t},\qquad
        s_t \leftarrow \frac{\beta s_{t-1} + (1-\beta)\lVert g_t - \operatorname{mean}(g_t)\rVert^2}{1-\beta^t},\qquad
        w_{t+1} \leftarrow w_t - \frac{\eta}{\sqrt{s_t} + \epsilon}\, v_t .

    Because the corrected v_{t−1} is fed back, the correction compounds: for a constant
    gradient g, v_1 = g but v_2 = g/(1−μ²) ≈ 5.3 g at μ = 0.9, and s_t is inflated the
    same way at β = 0.999 (s_2 ≈ 500·‖·‖²), so early steps are scaled by an amount that
    depends on t rather than on the gradients; both settle to the standard values as
    μ^t, β^t → 0. The optimizers notebook plots the step sizes of both forms.

    Args:
        lr: η.  mu: μ (first moment).  beta: β (second moment).  eps: ε.
        weight_decay: λ, coupled L2.  form: ``standard`` or ``lecture``.
    """

    def __init__(self, params, lr: float = 1e-3, mu: float = 0.9, beta: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, form: str = "standard"):  # fmt: skip
        check_hyperparameters(lr, weight_decay, mu=mu, beta=beta)
        if form not in ("standard", "lecture"):
            raise ConfigError("optimizer.form", form, "one of ['standard', 'lecture']")
        super().__init__(
            params,
            {
                "lr": lr,
                "mu": mu,
                "beta": beta,
                "eps": eps,
                "weight_decay": weight_decay,
                "form": form,
            },
        )

    def update(self, p, g, state, group) -> None:
        mu, beta, eps, lr = group["mu"], group["beta"], group["eps"], group["lr"]
        lecture = group["form"] == "lecture"
        if "t" not in state:
            state["t"] = torch.zeros((), dtype=torch.float64)
            state["v"] = torch.zeros_like(p)
            state["s"] = (
                torch.zeros((), dtype=p.dtype, device=p.device) if lecture else torch.zeros_like(p)
            )
        state["t"] += 1
        t = float(state["t"])
        v, s = state["v"], state["s"]
        if lecture:
            v.mul_(mu).add_(g, alpha=1 - mu).div_(1 - mu**t)
            s.mul_(beta).add_((g - g.mean()).pow(2).sum(), alpha=1 - beta).div_(1 - beta**t)
            p.sub_(lr * v / (s.sqrt() + eps))
        else:
            v.mul_(mu).add_(g, alpha=1 - mu)
            s.mul_(beta).addcmul_(g, g, value=1 - beta)
            v_hat = v / (1 - mu**t)
            s_hat = s / (1 - beta**t)
            p.sub_(lr * v_hat / (s_hat.sqrt() + eps))
