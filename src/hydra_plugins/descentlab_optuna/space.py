"""A search space written in Hydra's override grammar, as Optuna distributions.

Each entry is parsed by Hydra's own ``OverridesParser`` (as the official plugin does), so
the sweep reads like any multirun's overrides:

===================================  ==================================================
``interval(0.0, 0.5)``               ``FloatDistribution(0.0, 0.5)`` (both ends included)
``tag(log, interval(1e-4, 1e-1))``   ``FloatDistribution(1e-4, 1e-1, log=True)``
``int(interval(1, 8))``              ``IntDistribution(1, 8)`` (``log`` tag: ``log=True``)
``range(1, 10, 3)``                  ``IntDistribution(1, 7, step=3)``: Hydra's range stops
                                     before ``stop``, like Python's (floats: a stepped
                                     ``FloatDistribution``)
``choice([64], [128, 64], relu)``    ``CategoricalDistribution``; a list is kept as its
                                     override text (``"[128,64]"``)
``a,b`` (Hydra's short choice)       the same as ``choice(a, b)``
a plain value                        fixed: passed to every trial unchanged
===================================  ==================================================

``shuffle(...)`` is accepted and means nothing here: a sampler picks values, in no order.
A bad entry is one :class:`~descentlab.errors.ConfigError` naming its key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from descentlab.errors import ConfigError

GRAMMAR = (
    "a search space in Hydra's override grammar: interval(LOW,HIGH), "
    "tag(log,interval(LOW,HIGH)), int(interval(LOW,HIGH)), choice(A,B,...), "
    "range(START,STOP[,STEP]), or a fixed value"
)


def distribution(override: Any) -> Any:
    """The Optuna distribution of one parsed sweep override (raises ValueError when Optuna
    refuses its bounds)."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    if override.is_range_sweep() and not value.shuffle:
        values = list(override.sweep_iterator())
        if not values:
            raise ValueError("the range holds no value")
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(values[0], values[-1], step=value.step)
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    # choice, shuffle(...): numbers and booleans as themselves, anything else (strings,
    # lists, dicts) as the text an override needs (escaped: 'a b' -> a\ b)
    raw = override.sweep_iterator(transformer=Transformer.identity)
    text = override.sweep_string_iterator()
    choices = [
        v if isinstance(v, (bool, int, float)) else s for v, s in zip(raw, text, strict=True)
    ]
    return CategoricalDistribution(choices)


def parse(entries: Iterable[tuple[str, str]]) -> tuple[dict[str, Any], list[str]]:
    """``(name the user wrote, "key=value")`` pairs -> (the search space: key ->
    distribution, the fixed overrides). A later entry for the same key wins (the command
    line's over ``hydra.sweeper.params``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for name, text in entries:
        try:
            override = parser.parse_override(text)
        except HydraException as err:
            raise ConfigError(name, text.partition("=")[2], f"{GRAMMAR} ({err})") from None
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if not override.is_sweep_override():
            fixed[key] = text
            continue
        try:
            space[key] = distribution(override)
        except ValueError as err:
            raise ConfigError(name, text.partition("=")[2], str(err)) from None
    return space, list(fixed.values())


def override_text(key: str, value: Any) -> str:
    """The override that sets ``key`` to a sampled value (categorical text is already one)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def plain_value(key: str, value: Any) -> Any:
    """A sampled value as the config would hold it (``"[128,64]"`` -> ``[128, 64]``), for
    ``optuna_results.yaml``."""
    if not isinstance(value, str):
        return value
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"{key}={value}").value()
