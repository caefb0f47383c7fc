"""Checkers for the exercises at the end of notebooks 01-04.

Each ``check_*`` takes the student's answer, prints ``correct`` or what is wrong (or ``not
answered yet`` while the answer is still ``None``) and returns True only when it is right.
The worked answers are in ``notebooks/solutions/``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch

NOT_ANSWERED = "not answered yet: replace None with your answer and run this cell again"


def _answered(answer) -> bool:
    if answer is None:
        print(NOT_ANSWERED)
        return False
    return True


def _number(answer, what: str) -> float | None:
    """The answer as a float, or None (with a message) when it is not a real number."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        print(f"{what} should be a number, got {answer!r}")
        return None
    if not math.isfinite(answer):
        print(f"{what} should be a finite number, got {answer}")
        return None
    return float(answer)


def _close(a: float, b: float, rel: float = 1e-3, abs_: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _correct() -> bool:
    print("correct")
    return True


# ======================================================================= notebook 01

# ∂ℒ/∂w of the worked example at another point: the two paths (through z and through r)
EXERCISE_POINT = {"w": -1.0, "b": 0.5, "x": 2.0, "y": 0.0, "lam": 0.05}


def _worked_terms(w, b, x, y, lam) -> tuple[float, float]:
    """(through z: ∂ℒ/∂z · x, through r: ∂ℒ/∂r · 2w)."""
    u = 1 / (1 + math.exp(-(w * x + b)))
    dz = (u - y) * u * (1 - u)
    return dz * x, lam * 2 * w


def check_worked_gradient(answer) -> bool:
    """∂ℒ/∂w of ℒ = ½(y − σ(wx + b))² + λw² at w = −1, b = 0.5, x = 2, y = 0, λ = 0.05."""
    if not _answered(answer) or (a := _number(answer, "∂ℒ/∂w")) is None:
        return False
    through_z, through_r = _worked_terms(**EXERCISE_POINT)
    if _close(a, through_z + through_r):
        return _correct()
    if _close(a, through_z):
        print(f"{a:.6g} is only the path through z (∂ℒ/∂z · x); w also reaches ℒ through r = w²")
    elif _close(a, through_r):
        print(f"{a:.6g} is only the path through r (λ · 2w); add the path through z (∂ℒ/∂z · x)")
    elif _close(a, through_z / EXERCISE_POINT["x"] + through_r):
        print(f"{a:.6g}: you used ∂z/∂w = 1; z = wx + b, so ∂z/∂w = x = {EXERCISE_POINT['x']:g}")
    else:
        print(
            f"{a:.6g} is not ∂ℒ/∂w. Go node by node: z = wx + b, u = σ(z), ∂ℒ/∂u = u − y, "
            "∂ℒ/∂z = ∂ℒ/∂u · u(1 − u), then add both paths into w"
        )
    return False


def check_tanh(my_tanh) -> bool:
    """``my_tanh(a: Value) -> Value`` built from the engine's ops: value and gradient of tanh."""
    if not _answered(my_tanh):
        return False
    if not callable(my_tanh):
        print(f"my_tanh should be a function of a Value, got {my_tanh!r}")
        return False
    from descentlab.autograd.engine import Value

    for a in (-2.0, -0.3, 0.0, 0.7, 1.5):
        x = Value(a)
        try:
            out = my_tanh(x)
        except Exception as err:  # the student's code: show what went wrong
            print(f"my_tanh(Value({a})) raised {type(err).__name__}: {err}")
            return False
        if not isinstance(out, Value):
            print(f"my_tanh(Value({a})) returned {out!r}, not a Value: build it from Value's ops")
            return False
        out.backward()
        if not _close(out.data, math.tanh(a), rel=1e-9, abs_=1e-12):
            print(
                f"the value is wrong: my_tanh({a}) = {out.data:.6g}, tanh({a}) = {math.tanh(a):.6g}"
            )
            return False
        want = 1 - math.tanh(a) ** 2
        if x.grad == 0.0 and want != 0.0:
            print(
                "the value is right but x.grad is 0: the result is not connected to x "
                "(compute with Value operations, not math.tanh on x.data)"
            )
            return False
        if not _close(x.grad, want, rel=1e-9, abs_=1e-12):
            print(f"the gradient is wrong at a = {a}: got {x.grad:.6g}, 1 − tanh²(a) = {want:.6g}")
            return False
    return _correct()


def check_softmax_floor(answer) -> bool:
    """The lowest training loss a 10-class network with a Softmax before CrossEntropyLoss can reach."""
    if not _answered(answer) or (a := _number(answer, "the lowest loss")) is None:
        return False
    floor = math.log(1 + 9 / math.e)
    if _close(a, floor):
        return _correct()
    if abs(a) < 1e-6:
        print(
            "0 is the floor without the extra Softmax; with it the logits are probabilities in [0, 1]"
        )
    elif _close(a, math.log(10)):
        print("ln 10 is the loss of a uniform prediction; the network can do better than that")
    else:
        print(
            f"{a:.6g} is not the floor. The best the network can output is p = one-hot; "
            "what is −log softmax(p)_y for that p with 10 classes?"
        )
    return False


# ======================================================================= notebook 02

ESCAPE_LR = 1.0  # η of the momentum exercise: plain SGD (μ = 0) does not settle at this η
ESCAPE_STEPS = 10  # escape: y > 1 by this step
SETTLE_STEPS = 40  # and within 0.1 of the minimum (0, √2) from this step on


def saddle_run(lr: float, mu: float, steps: int = 100) -> torch.Tensor:
    """Momentum (the notes' form) on f = x² − y² + y⁴/4 from (1, 10⁻³): w_0 .. w_steps."""
    from descentlab.optim import Momentum

    w = torch.tensor([1.0, 1e-3], dtype=torch.float64, requires_grad=True)
    opt = Momentum([w], lr=lr, mu=mu)
    path = [w.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        (w[0] ** 2 - w[1] ** 2 + w[1] ** 4 / 4).backward()
        opt.step()
        path.append(w.detach().clone())
    return torch.stack(path)


def escape_and_settle(path: torch.Tensor) -> tuple[float, float]:
    """(first step with y > 1, first step from which w stays within 0.1 of (0, √2)); inf: never."""
    escape = next((float(t) for t in range(len(path)) if path[t, 1] > 1), math.inf)
    dist = (path - torch.tensor([0.0, math.sqrt(2.0)], dtype=path.dtype)).norm(dim=1)
    far = torch.nonzero(~(dist < 0.1)).flatten()
    if len(far) == 0:
        return escape, 0.0
    last = far[-1].item()
    return escape, math.inf if last == len(path) - 1 else float(last + 1)


def check_momentum_escape(mu) -> bool:
    """η = 1 on the saddle: μ such that momentum escapes (y > 1) within 10 steps and stays
    within 0.1 of the minimum from step 40 on."""
    if not _answered(mu) or (m := _number(mu, "μ")) is None:
        return False
    if not 0 <= m < 1:
        print(f"μ = {m:g} is not in [0, 1): the average v ← μv + (1−μ)g needs 0 ≤ μ < 1")
        return False
    escape, settle = escape_and_settle(saddle_run(ESCAPE_LR, m))
    print(
        f"μ = {m:g}, η = {ESCAPE_LR:g}: y > 1 at step {escape:g}, within 0.1 of (0, √2) from step {settle:g}"
    )
    if escape <= ESCAPE_STEPS and settle <= SETTLE_STEPS:
        return _correct()
    if settle > SETTLE_STEPS and escape <= ESCAPE_STEPS:
        print(
            "it escapes, but does not settle: near the minimum (curvature 4) the notes' momentum is "
            "stable only for η(1−μ)·4 < 2(1+μ), i.e. μ > (2η − 1)/(2η + 1) = 1/3 at η = 1: raise μ"
        )
    else:
        print(
            f"too slow: y > 1 only at step {escape:g}. v is an average, it lags behind the growing "
            "gradient, and more memory (larger μ) lags more: lower μ"
        )
    return False


def check_torch_lr(answer) -> bool:
    """The lr with which torch.optim.SGD(momentum=0.9, dampening=0) takes the same steps as
    descentlab's Momentum(lr=0.1, mu=0.9)."""
    if not _answered(answer) or (a := _number(answer, "lr")) is None:
        return False
    from descentlab.optim import Momentum

    eta, mu = 0.1, 0.9
    ours = torch.tensor([-10.0, 2.0], dtype=torch.float64, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    opts = [Momentum([ours], lr=eta, mu=mu), torch.optim.SGD([theirs], lr=a, momentum=mu)]
    gap = 0.0
    for _ in range(30):
        for w, opt in zip((ours, theirs), opts, strict=True):
            opt.zero_grad()
            (0.5 * (w[0] ** 2 + 25 * w[1] ** 2)).backward()
            opt.step()
        gap = max(gap, (ours - theirs).abs().max().item())
    if gap < 1e-9:
        return _correct()
    print(f"with lr = {a:g} the two runs differ by up to {gap:.3g} over 30 steps")
    if _close(a, eta):
        print(
            "lr = η is too large: torch's buffer b ← μb + g sums the gradients (weights 1, μ, μ², ... "
            "add up to 1/(1−μ)), the notes' v ← μv + (1−μ)g averages them: compare b and v"
        )
    elif _close(a, eta / (1 - mu)):
        print("that is η/(1−μ), the wrong way round: torch's b is 1/(1−μ) times the notes' v")
    return False


FIRST_MOMENT = {"g": 2.0, "mu": 0.9, "t": 5}


def check_first_moment(answer) -> bool:
    """v_5 of v_t = μ v_{t−1} + (1 − μ) g with v_0 = 0, g = 2, μ = 0.9 (no bias correction)."""
    if not _answered(answer) or (a := _number(answer, "v_5")) is None:
        return False
    g, mu, t = FIRST_MOMENT["g"], FIRST_MOMENT["mu"], FIRST_MOMENT["t"]
    v = 0.0
    for _ in range(t):
        v = mu * v + (1 - mu) * g
    if _close(a, v, rel=1e-4):
        return _correct()
    if _close(a, g):
        print(f"{a:g} is v̂_5 = v_5/(1 − μ⁵), the corrected value; v_5 itself is smaller")
    elif _close(a, mu**t * g):
        print(f"{a:g} is μ⁵ g; the weights of the past gradients sum to 1 − μᵗ, not μᵗ")
    else:
        print(
            f"{a:g} is not v_5: unroll v_1 = (1 − μ) g, v_2 = μ v_1 + (1 − μ) g, ... or use a closed form"
        )
    return False


# ======================================================================= notebook 03

VARIANCE_NET = {"width": 100, "s": 0.12}  # the linear net of the prediction exercise


def measured_variance(
    layer: int, width: int, s: float, samples: int = 4096, seed: int = 0
) -> float:
    """var(z^(layer)) of a linear net of ``width`` with w ~ N(0, s²), inputs ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, width, dtype=torch.float64, generator=gen)
    for _ in range(layer):
        z = z @ (torch.randn(width, width, dtype=torch.float64, generator=gen) * s).T
    return z.var().item()


def check_variance_prediction(layer, answer) -> bool:
    """Predict var(z^(layer)) of a linear net of width 100, w ~ N(0, 0.12²), var(z^(0)) = 1."""
    if not _answered(answer) or (a := _number(answer, "your prediction")) is None:
        return False
    if not isinstance(layer, int) or layer < 1:
        print(f"layer should be a whole number ≥ 1, got {layer!r}")
        return False
    n, s = VARIANCE_NET["width"], VARIANCE_NET["s"]
    predicted = (n * s**2) ** layer
    measured = measured_variance(layer, n, s)
    print(
        f"layer {layer}: your prediction {a:.4g}, (n_in s²)^l = {predicted:.4g}, measured {measured:.4g}"
    )
    if _close(a, predicted, rel=0.02):
        return _correct()
    if _close(a, n * s**2):
        print("that is the factor of one layer; it applies once per layer")
    elif _close(a, (n * s) ** layer) or _close(a, (n**0.5 * s) ** layer):
        print("check the factor: var(w) = s², so one layer multiplies the variance by n_in · s²")
    else:
        print("each layer multiplies the variance by n_in · var(w)")
    return False


XAVIER_LAYER = {"n_in": 300, "n_out": 100}


def check_xavier_std(answer) -> bool:
    """s of Xavier's normal init for a layer with n_in = 300, n_out = 100."""
    if not _answered(answer) or (a := _number(answer, "s")) is None:
        return False
    n_in, n_out = XAVIER_LAYER["n_in"], XAVIER_LAYER["n_out"]
    want = math.sqrt(2 / (n_in + n_out))
    if _close(a, want, rel=1e-3):
        return _correct()
    if _close(a, want**2):
        print(f"{a:g} is the variance 2/(n_in + n_out); s is its square root")
    elif _close(a, math.sqrt(1 / n_in)):
        print(f"{a:g} keeps only the forward pass (1/n_in); Xavier also keeps the backward pass")
    elif _close(a, math.sqrt(1 / n_out)):
        print(f"{a:g} keeps only the backward pass (1/n_out); Xavier compromises between the two")
    else:
        print(f"{a:g} is not Xavier's s: var(w) = 2/(n_in + n_out), s = √var(w)")
    return False


DEPTH_NET = {"width": 128, "depth": 50, "within": 2.0}


def check_depth_std(answer) -> bool:
    """s such that a 50-layer linear net of width 128 keeps var(z^(50)) within a factor 2 of var(z^(0))."""
    if not _answered(answer) or (a := _number(answer, "s")) is None:
        return False
    n, depth, within = DEPTH_NET["width"], DEPTH_NET["depth"], DEPTH_NET["within"]
    if a <= 0:
        print(f"s = {a:g}: a standard deviation is positive")
        return False
    predicted = (n * a**2) ** depth
    measured = measured_variance(depth, n, a, samples=1024)
    print(f"s = {a:g}: predicted var(z^({depth})) = {predicted:.4g}, measured {measured:.4g}")
    if 1 / within <= predicted <= within:
        return _correct()
    direction = "large" if predicted > within else "small"
    print(
        f"too {direction}: (n_in s²)^{depth} must lie in [1/{within:g}, {within:g}], so n_in s² within "
        f"{within:g}^(±1/{depth}) of 1"
    )
    return False


# ======================================================================= notebook 04


def check_label_noise_share(answer, p: float = 0.5, classes: int = 10) -> bool:
    """The share of wrong training labels under data.label_noise=p: p·(1 − 1/K)."""
    if not _answered(answer):
        return False
    value = _number(answer, "the share")
    if value is None:
        return False
    expected = p * (1 - 1 / classes)
    if _close(value, expected):
        return _correct()
    if _close(value, p):
        print(
            f"{p} is the share replaced; some replacements land on the true class (1 in {classes})"
        )
    else:
        print(
            f"not quite: a share p is replaced, and a replaced label is wrong with probability 1 − 1/{classes}"
        )
    return False


def check_l2_as_weight_decay(answer, l2_penalty: float = 0.02) -> bool:
    """model.l2_penalty=λ (gradient 2λw) is torch SGD's weight_decay=2λ on the weights."""
    if not _answered(answer):
        return False
    value = _number(answer, "weight_decay")
    if value is None:
        return False
    if _close(value, 2 * l2_penalty):
        return _correct()
    if _close(value, l2_penalty):
        print(
            "the penalty λ‖w‖² has gradient 2λw, while torch's weight_decay adds (weight_decay)·w"
        )
    else:
        print("compare the gradients: d/dw of λ‖w‖² against the term torch adds to the gradient")
    return False


def check_dropout_eval_factor(answer, p: float = 0.3) -> bool:
    """The lecture's dropout keeps a unit with probability 1 − p: eval multiplies by 1 − p."""
    if not _answered(answer):
        return False
    value = _number(answer, "the factor")
    if value is None:
        return False
    if _close(value, 1 - p):
        return _correct()
    if _close(value, 1 / (1 - p)):
        print(
            "that is inverted dropout's training-time factor; the lecture's form scales at evaluation"
        )
    else:
        print("what is E[m_i] when a unit is kept with probability 1 − p?")
    return False


PAIRED_DIFFERENCES = (0.006, -0.003, 0.011, -0.002)


def paired_verdict(differences=PAIRED_DIFFERENCES) -> str:
    """ "effect" when |mean| > 2 standard errors of the paired differences, else "noise"."""
    import statistics

    mean = statistics.mean(differences)
    se = statistics.stdev(differences) / len(differences) ** 0.5
    return "effect" if abs(mean) > 2 * se else "noise"


def check_paired_verdict(answer) -> bool:
    if not _answered(answer):
        return False
    if answer not in ("effect", "noise"):
        print('answer "effect" or "noise"')
        return False
    if answer == paired_verdict():
        return _correct()
    print("compute the mean of the differences and its standard error, stdev / √n, then compare")
    return False


CHECKERS: dict[str, Callable] = {
    name: obj for name, obj in globals().items() if name.startswith("check_") and callable(obj)
}
