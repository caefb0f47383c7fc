"""Command-line polish: Hydra's configuration errors as one line, like ours.

Hydra reports a bad override (an unknown option or key) in several lines plus its
config search path. ``short_config_errors()`` wraps Hydra's reporting so that such
errors print as ``descentlab: error: <one line>`` with exit code 1, while every other
exception goes through Hydra's own report unchanged. ``HYDRA_FULL_ERROR=1`` restores
Hydra's full output. It patches one private Hydra function (``run_and_report``): Hydra
has no public hook for how its errors are reported. This is the one documented private
use of Hydra (``tests/test_private_apis.py`` pins it and fails when the name moves; at
run time nothing is patched then and Hydra's own messages appear).
"""

from __future__ import annotations

import os
import re
import sys

from descentlab.errors import DescentlabError, one_line

# Keys that were renamed: the old name on the command line gets one line naming the new one.
RENAMED_KEYS = {
    "model.weight_decay": "model.l2_penalty (λ of the penalty λ‖w‖² on weights; "
    "optimizer.weight_decay is torch's λw on every parameter)",
    "optimizer.per_coordinate": "optimizer.scope (per_coordinate=true is scope=coordinate)",
    "model.net.num_classes": "model.net.num_outputs (it follows task.outputs)",
}


# Nodes of the model config that only point at a config group (model.optimizer: ${optimizer}):
# their keys are set in the group, and Hydra's own hint (add a "+") fails too.
REFERENCED_GROUPS = {
    "model.optimizer.": "optimizer.",
    "model.init.": "init.",
    "model.task.": "task.",
}


def renamed_key_hint(message: str) -> str | None:
    """A one-line pointer to the right key when Hydra's error is about a renamed key or a
    key set through a reference (``model.optimizer.lr``), else None."""
    for old, new in RENAMED_KEYS.items():
        if f"'{old}'" in message or f"'+{old}'" in message:
            return f"{old} was renamed: use {new}"
    for via, group in REFERENCED_GROUPS.items():
        found = re.search(rf"'\+*{re.escape(via)}([\w.]+)'", message)
        if found:
            key = found.group(1)
            return (
                f"{via}{key} cannot be set: {via[:-1]} refers to the {group[:-1]} group, "
                f"set {group}{key}=VALUE instead"
            )
    present = re.search(r"An item is already at '([\w.]+)'", message)
    if present:  # +trainer.max_steps=7 from habit: the key is in the config already
        key = present.group(1)
        return f"{key} is in the config already: set it without the +, {key}=VALUE"
    return None


def null_group_override(message: str) -> str | None:
    """``logger=null`` on the command line: Hydra's ValueError names no group; say which, and
    the option that turns it off (``none``), when the group has one."""
    if not message.startswith("Config group override must be a string or a list"):
        return None
    from descentlab.config import CONFIG_DIR

    for arg in sys.argv[1:]:
        group, _, value = arg.lstrip("+~").partition("=")
        if value == "null" and (CONFIG_DIR / group).is_dir():
            off = (CONFIG_DIR / group / "none.yaml").is_file()
            return f"{group}=null: a config group takes an option name" + (
                f"; {group}=none turns it off" if off else ""
            )
    return None


def _own_refusal(err: BaseException) -> DescentlabError | None:
    """The first of our own errors down ``err``'s chain of causes (or contexts), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, DescentlabError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def short_config_errors() -> None:
    try:
        import hydra._internal.utils as hydra_utils
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException
    except ImportError:  # pragma: no cover - a Hydra without this layout
        return
    original = getattr(hydra_utils, "run_and_report", None)
    if original is None or getattr(original, "_descentlab", False):
        return

    def run_and_report(func):
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return original(func)
        try:
            return func()
        except (HydraException, OmegaConfBaseException) as err:
            message = one_line(str(err))
            refusal = _own_refusal(err)
            if refusal is not None:
                # a resolver's own refusal, wrapped by OmegaConf in "ConfigError raised while
                # resolving interpolation: ...": the refusal alone
                message = one_line(str(refusal))
            elif err.__cause__ is not None:  # e.g. "Key 'max_epoch' is not in struct"
                message += f" ({one_line(str(err.__cause__))})"
            message = renamed_key_hint(message) or message
            print(f"descentlab: error: {message}", file=sys.stderr)
            sys.exit(1)
        except ValueError as err:
            nulled = null_group_override(str(err))
            if nulled is None:
                raise
            print(f"descentlab: error: {nulled}", file=sys.stderr)
            sys.exit(1)
        except Exception as err:  # noqa: BLE001 - reported by Hydra as before
            error = err  # `err` is unbound after the except block; the closure needs it

            def reraise():
                raise error

            return original(reraise)

    run_and_report._descentlab = True
    hydra_utils.run_and_report = run_and_report
