"""Check every ``_target_``'s arguments in the config against its class's declared rules.

For each node with a ``_target_`` (the data module, the model, its net, the optimizer,
init, each penalty, each callback, ...), the values the config gives are checked against
the target's signature (:func:`descentlab.rules.rules_of`: ``Annotated`` rules, else plain
type hints) before anything is built, and a bad one is reported on the key the user
wrote: ``optimizer.lr``, ``model.penalties.sparse.strength``. A user's own class, added
as "Extending the template" shows, gets the same one-line errors without any code.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from descentlab.errors import ParameterError
from descentlab.rules import check_arguments


def _is_reference(value: Any) -> bool:
    """``${optimizer}``: a node that only points at another one (checked there)."""
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def _target_nodes(raw: Any, prefix: str = ""):
    """(key, raw node) of every dict node with a ``_target_``, outermost first."""
    if isinstance(raw, dict):
        if "_target_" in raw:
            yield prefix.rstrip("."), raw
        for key, value in raw.items():
            if isinstance(value, (dict, list)):
                yield from _target_nodes(value, f"{prefix}{key}.")
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _target_nodes(value, f"{prefix}{index}.")


def check_config_arguments(cfg: DictConfig, groups: tuple[str, ...] | None = None) -> None:
    """Raise the first bad argument as a ConfigError on its config key (see module doc)."""
    from hydra.utils import get_object

    raw = OmegaConf.to_container(cfg, resolve=False)
    for key, node in _target_nodes({k: v for k, v in raw.items() if groups is None or k in groups}):
        if _is_reference(node["_target_"]):
            continue
        try:
            target = get_object(OmegaConf.select(cfg, f"{key}._target_"))
        except Exception:  # noqa: BLE001 - a target that does not import: instantiate says so
            continue
        arguments = {}
        for name, value in node.items():
            if name.startswith("_") or _is_reference(value):
                continue
            resolved = OmegaConf.select(cfg, f"{key}.{name}")
            if isinstance(resolved, (DictConfig, ListConfig)):
                if isinstance(resolved, DictConfig) and "_target_" in resolved:
                    continue  # an object built from its own node, checked there
                resolved = OmegaConf.to_container(resolved, resolve=True)
            arguments[name] = resolved
        try:
            check_arguments(target, arguments)
        except ParameterError as err:
            raise err.at(key) from None
