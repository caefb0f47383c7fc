"""What the lecture's optimizers share: checked hyperparameters, coupled weight decay, the
step structure (whole-vector statistics first, then one update per tensor) and the
guarded adaptive step."""

from __future__ import annotations

import torch
from torch import Tensor

from descentlab.errors import ParameterError

# Over what an adaptive denominator s_t is accumulated (Adaptive, and Adam's lecture form):
#   global     - the notes: every parameter of the optimizer is one vector w ∈ R^d
#   tensor     - one s per parameter tensor
#   coordinate - one s per entry (AdaGrad)
# (the names, and each hyperparameter's range, are descentlab.rules.OPTIMIZER)


def gradient(p: Tensor, weight_decay: float) -> Tensor:
    """g = ∇L(w) + λ w: coupled L2 decay, the gradient of L(w) + (λ/2)‖w‖².

    This is torch's meaning of ``weight_decay`` (λw on every parameter, biases included).
    The TaskModule's ``model.l2_penalty`` is the lecture's λ‖w‖² on weights only, whose
    gradient is 2λw. Coupled means the decay term goes through the optimizer's own
    rescaling (momentum averaging, the adaptive denominator), unlike AdamW's decoupled
    ``w ← w − ηλw``.
    """
    g = p.grad
    return g.add(p, alpha=weight_decay) if weight_decay != 0 else g


def centered_square_norm(grads: list[Tensor]) -> Tensor:
    """‖g − mean(g)‖² of the vector g that concatenates ``grads`` (one mean over all entries).

    Summed tensor by tensor, so no concatenated copy of every gradient is made.
    """
    n = sum(g.numel() for g in grads)
    mean = torch.stack([g.sum() for g in grads]).sum() / n
    return torch.stack([(g - mean).pow(2).sum() for g in grads]).sum()


def adaptive_step(p: Tensor, direction: Tensor, s: Tensor, lr: float, eps: float) -> None:
    """w ← w − η d / (√s + ε), except that where s = 0 the step is 0.

    s = 0 while d ≠ 0 happens when the centered norm ‖g − mean(g)‖ has been 0 at every
    step so far: all gradient entries equal (a 1-element tensor, the biases of units made
    identical by a constant init). The literal rule would then step η d / ε, e.g.
    w: 1 → −2·10⁹ in one step at η = 0.1, ε = 1e-10. With s = 0 the rule has no measure of
    the gradient's scale yet, so it does not move. ``torch.where`` keeps this free of host
    reads (no synchronization on a GPU).
    """
    denominator = torch.where(s > 0, s.sqrt() + eps, torch.inf)
    p.sub_(lr * direction / denominator)


def parameter_name(group: dict, index: int, group_index: int) -> str:
    names = group.get("param_names")
    if names:
        return names[index]
    shape = tuple(group["params"][index].shape)
    return f"parameter {index} of group {group_index} (shape {shape})"


class LectureOptimizer(torch.optim.Optimizer):
    """Base of the lecture's optimizers; ``step`` does, for the parameters with a gradient:

    1. g ← ∇L(w) + λw (coupled decay, :func:`gradient`);
    2. ``begin_step(pairs)``: statistics of the whole step, computed from every g before
       any parameter moves. The notes' mean(g_t) and ‖g_t − mean(g_t)‖² are over the one
       vector w ∈ R^d, i.e. over all tensors at once;
    3. ``update(p, g, state, group)`` for each parameter tensor.

    Step 3 has two implementations that take the same steps: ``update``, one tensor at a
    time (the rule as the lecture writes it), and ``update_all``, one ``torch._foreach_*``
    call per line of the rule over every tensor of a parameter group (on a GPU: a few kernel
    launches per step instead of a few per tensor). ``foreach`` (a hyperparameter) picks:
    ``None`` (default) uses ``update_all`` wherever the optimizer has one for the group's
    options (``supports_foreach``), ``False`` the loop, ``True`` insists (a one-line error
    where there is none). ``tests/test_optim_foreach.py`` checks both paths agree to 1e-12.

    State of the whole vector (not of one tensor) lives in ``self.global_state`` and is
    saved as ``state_dict()["global_state"]``, so a resumed run continues exactly.
    Hyperparameters named by ``shared_keys`` enter that statistic and must be equal in
    every parameter group.
    """

    def __init__(self, params, defaults: dict):
        self.global_state: dict = {}
        super().__init__(params, defaults)

    # -- hooks for subclasses ---------------------------------------------------------
    def begin_step(self, pairs: list[tuple[Tensor, Tensor]]) -> None:
        """Whole-step statistics from every (parameter, g); nothing by default."""

    def update(self, p: Tensor, g: Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    def update_all(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict], group: dict
    ) -> None:
        """``update`` for every tensor of ``group`` at once, with ``torch._foreach_*`` ops."""
        raise NotImplementedError

    def supports_foreach(self, group: dict) -> bool:
        """Whether ``update_all`` implements this group's options (none by default)."""
        return False

    def uses_foreach(self, group: dict) -> bool:
        return group.get("foreach") is not False and self.supports_foreach(group)

    def shared_keys(self) -> tuple[str, ...]:
        """Hyperparameters that every parameter group must share (none by default)."""
        return ()

    def check_group(self, group: dict, group_index: int) -> None:
        """Raise ParameterError for a parameter group this optimizer cannot train."""

    # -- the step -----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []  # (group, its parameters with a gradient, their g)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if self.uses_foreach(group):
                grads = [p.grad for p in params]
                if group["weight_decay"] != 0:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            else:
                grads = [gradient(p, group["weight_decay"]) for p in params]
            work.append((group, params, grads))
        if work:
            self.begin_step(
                [pair for _, params, grads in work for pair in zip(params, grads, strict=True)]
            )
        for group, params, grads in work:
            if self.uses_foreach(group):
                self.update_all(params, grads, [self.state[p] for p in params], group)
            else:
                for p, g in zip(params, grads, strict=True):
                    self.update(p, g, self.state[p], group)
        return loss

    # -- groups and state -----------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group, first = self.param_groups[-1], self.param_groups[0]
        try:
            for key in self.shared_keys():
                if group[key] != first[key]:
                    raise ParameterError(
                        key,
                        group[key],
                        f"{first[key]!r}, as in the first parameter group "
                        "(it enters one statistic over all parameters)",
                    )
            if group.get("foreach") is True and not self.supports_foreach(group):
                raise ParameterError(
                    "foreach",
                    True,
                    f"null or false: {type(self).__name__} has no foreach step for these "
                    "options (the per-tensor loop takes the same steps)",
                )
            self.check_group(group, len(self.param_groups) - 1)
        except ParameterError:
            self.param_groups.pop()  # leave the optimizer as it was
            raise

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.global_state:
            state["global_state"] = {
                k: v.clone() if isinstance(v, Tensor) else v for k, v in self.global_state.items()
            }
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("global_state", {})
        super().load_state_dict(state_dict)
        device = self.param_groups[0]["params"][0].device
        self.global_state = {
            k: v.to(device) if isinstance(v, Tensor) else v for k, v in saved.items()
        }
