"""Range rules for parameters, each defined once and declared where the parameter is.

A class states what its parameters accept in its signature, with ``typing.Annotated``::

    @checked
    def __init__(self, params, lr: Annotated[float, POSITIVE] = 0.1, ...)

- :func:`checked` enforces the rules when the class is called (from Python, the API);
  a bad value is a :class:`~descentlab.errors.ParameterError` naming the parameter.
- Built from a config, the run checks the config's values against the same signature
  before building (:func:`check_arguments`) and names the key the user wrote
  (``optimizer.lr``, ``model.penalties.sparse.strength``). A user's own class gets this
  too: from its ``Annotated`` rules, else from its plain type hints (``float``, ``int``,
  ``bool``, ``str``).
- The torch-free pre-check (``config/validate.py``) reads the same rule objects through
  :data:`OPTIMIZER`, so a bad learning rate is refused before torch is imported.

Torch-free: imported by the config layer's fast path and by the constructors alike.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from descentlab.errors import ParameterError


class Rule:
    """What a parameter accepts: ``allowed`` (said to the user) and ``ok(value)``."""

    def __init__(self, allowed: str, ok: Callable[[Any], bool], allows_none: bool = False):
        self.allowed, self.ok, self.allows_none = allowed, ok, allows_none

    def check(self, name: str, value: Any) -> None:
        if value is None and self.allows_none:
            return
        if value is None:
            raise ParameterError(name, None, f"{self.allowed} (null is not one)")
        if not self.ok(value):
            raise ParameterError(name, value, self.allowed)

    def or_none(self, allowed: str | None = None) -> Rule:
        """The same rule, with null accepted too."""
        return Rule(allowed or f"{self.allowed}, or null", self.ok, allows_none=True)

    def __repr__(self) -> str:
        return f"Rule({self.allowed!r})"


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not nan/inf, not a string such as 'abc')."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# float32's largest value: a hyperparameter above it overflows inside the tensors' arithmetic
# (optimizer.lr=1e300 was a RuntimeError from Adam's step)
FLOAT32_MAX = 3.4028234663852886e38
POSITIVE = Rule(
    "a positive number (at most 3.4e38, float32's largest)",
    lambda v: is_number(v) and 0 < v <= FLOAT32_MAX,
)
NON_NEGATIVE = Rule(
    "a number >= 0 (at most 3.4e38, float32's largest)",
    lambda v: is_number(v) and 0 <= v <= FLOAT32_MAX,
)
UNIT_INTERVAL = Rule("a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1)
RATE = Rule("a rate in [0, 1)", lambda v: is_number(v) and 0 <= v < 1)
POSITIVE_INT = Rule("a positive integer", lambda v: is_integer(v) and v > 0)
NON_NEGATIVE_INT = Rule("an integer >= 0", lambda v: is_integer(v) and v >= 0)
BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))


def one_of(*choices: Any) -> Rule:
    shown = [c for c in choices if c is not None]
    return Rule(f"one of {shown}", lambda v: v in choices, allows_none=None in choices)


# The lecture's optimizers share these names (η, λ, μ, β, ε): the torch-free pre-check of
# `optimizer.*` reads them here, the classes declare them with the same objects.
SCOPES = ("global", "tensor", "coordinate")
SCOPE = one_of(*SCOPES)
FORMS = ("standard", "lecture")
OPTIMIZER: dict[str, Rule] = {
    "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "eps": NON_NEGATIVE,
    "mu": UNIT_INTERVAL,
    "beta": UNIT_INTERVAL,
    "momentum": UNIT_INTERVAL,
    "dampening": UNIT_INTERVAL,
    "scope": SCOPE.or_none(f"one of {list(SCOPES)}, or null (Adam: its form decides)"),
    "form": one_of(*FORMS),
    "foreach": BOOLEAN.or_none("true, false or null (null: foreach where the optimizer has it)"),
}

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# model.* (the TaskModule), model.net.* (an MLP, a Backbone), data.* (the DataModules)
MODEL: dict[str, Rule] = {
    "l2_penalty": NON_NEGATIVE,
    "backbone_lr_ratio": POSITIVE,
    "probe_epochs": NON_NEGATIVE_INT,
    "bn_stats": one_of("train", "frozen"),
    # torch.compile of the network: false, true (mode "default") or a torch.compile mode
    "compile": Rule(
        f"false, true or one of {list(COMPILE_MODES)}",
        lambda v: isinstance(v, bool) or v in COMPILE_MODES,
    ),
}
NET: dict[str, Rule] = {
    "hidden_dims": Rule(
        "a list of positive integers, e.g. [256,128]",
        lambda v: (
            isinstance(v, Sequence)
            and not isinstance(v, str)
            and all(is_integer(w) and w > 0 for w in v)
        ),
    ),
    "activation": one_of("relu", "sigmoid", "tanh", "identity"),
    "dropout": RATE,
    "ops": one_of("native", "optable"),
    "dropout_form": one_of("inverted", "lecture"),
    "bias": BOOLEAN,
    "freeze": BOOLEAN,
}
DATA: dict[str, Rule] = {
    "batch_size": Rule(
        "a positive integer or 'full'", lambda v: v == "full" or (is_integer(v) and v > 0)
    ),
    "eval_batch_size": POSITIVE_INT,
    "train_fraction": Rule("a number in (0, 1]", lambda v: is_number(v) and 0 < v <= 1),
    "val_fraction": Rule("a number in (0, 1)", lambda v: is_number(v) and 0 < v < 1),
    "test_fraction": Rule("a number in (0, 1)", lambda v: is_number(v) and 0 < v < 1),
    "num_workers": NON_NEGATIVE_INT.or_none(
        "an integer >= 0 (0: load in the main process) or null"
    ),
    "image_size": POSITIVE_INT.or_none("a positive integer (pixels), or null for the default"),
    "resize_size": POSITIVE_INT.or_none("a positive integer (pixels), or null for the default"),
    "on_bad_image": one_of("error", "skip"),
    "label_noise": Rule("a number in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1),
    "noise": NON_NEGATIVE,
}
# task.* (descentlab.tasks): what the model learns and how it is judged
TASK: dict[str, Rule] = {
    "outputs": POSITIVE_INT.or_none("a positive integer (the network's output width)"),
    "mode": one_of("min", "max"),
    "loss": one_of("bce", "squared"),
}
# Where each table applies in the config: the torch-free pre-check walks these.
TABLES: dict[str, dict[str, Rule]] = {
    "optimizer": OPTIMIZER,
    "model": MODEL,
    "model.net": NET,
    "data": DATA,
    "task": TASK,  # last: task.outputs follows the data (data.num_classes, data.target_size)
}

# Plain type hints of a user's class, when it declares no rule.
TYPE_RULES: dict[Any, Rule] = {
    float: Rule(
        "a number",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v),
    ),
    int: Rule("an integer", is_integer),
    bool: BOOLEAN,
    str: Rule("a string", lambda v: isinstance(v, str)),
}


def _rule_of_hint(hint: Any) -> Rule | None:
    if typing.get_origin(hint) is typing.Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, Rule)), None)
    if hint in TYPE_RULES:
        return TYPE_RULES[hint]
    args = typing.get_args(hint)  # float | None: the plain rule, with null accepted
    if type(None) in args and len(args) == 2:
        inner = _rule_of_hint(next(a for a in args if a is not type(None)))
        return inner.or_none() if inner is not None else None
    return None


@functools.cache
def rules_of(func: Callable) -> dict[str, Rule]:
    """The rule of each parameter of ``func`` (a class: its ``__init__``) that declares one."""
    target = func.__init__ if inspect.isclass(func) else func
    target = inspect.unwrap(target)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - a hint that does not resolve: no rules from hints
        return {}
    rules = {}
    for name, hint in hints.items():
        rule = _rule_of_hint(hint)
        if rule is not None and name != "return":
            rules[name] = rule
    return rules


def check_arguments(func: Callable, arguments: Mapping[str, Any]) -> None:
    """Raise :class:`ParameterError` for the first argument its rule refuses."""
    rules = rules_of(func)
    for name, value in arguments.items():
        if name in rules:
            rules[name].check(name, value)


def checked(init: Callable) -> Callable:
    """Enforce the ``Annotated`` rules of ``init``'s parameters on every call."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check_arguments(init, bound.arguments)
        return init(*args, **kwargs)

    return wrapper


# -- which way each metric a task logs is better (tasks, the monitor check, the report) --
# metric name (after the ``train/``, ``val/``, ``test/`` prefix) -> "min" or "max"
METRIC_MODES: dict[str, str] = {
    "loss": "min",
    "acc": "max",
    "mse": "min",
    "mae": "min",
    "r2": "max",
    "auroc": "max",
}


def mode_of(metric: str, default: str = "max") -> str:
    """``min`` or ``max`` for a logged name such as ``val/mse``; ``default`` for an unknown one."""
    return METRIC_MODES.get(metric.rsplit("/", 1)[-1], default)
