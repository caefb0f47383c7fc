"""Build a module again from the config a training checkpoint recorded.

Every training checkpoint carries the run's resolved ``model`` config (under
:data:`descentlab.torchfile.CONFIG_KEY`), so the network and the optimizer factory can be
built with Hydra's ``instantiate`` and no other argument.
"""

from __future__ import annotations

from typing import Any

from descentlab.errors import CheckpointError
from descentlab.torchfile import CONFIG_KEY

# Keys of a net config that name where its *initial* weights come from: a rebuilt net
# gets its weights from the checkpoint, so it must not download or read them again.
INITIAL_WEIGHTS_KEYS = ("weights", "checkpoint")


def build_net(net_config: dict[str, Any]):
    """``instantiate(net_config)`` without its sources of initial weights."""
    from hydra.utils import instantiate

    config = dict(net_config)
    for key in INITIAL_WEIGHTS_KEYS:
        if key in config:
            config[key] = None
    return instantiate(config)


def build_task(task_config: dict[str, Any] | None):
    """The task of the config; a config without one (recorded before tasks existed) was a
    classification run."""
    from hydra.utils import instantiate

    return instantiate(task_config) if task_config else None


# Names a recorded model config used before they changed, and the names they have now.
RENAMED_TARGETS = {"descentlab.models.classifier.Classifier": "descentlab.models.module.TaskModule"}
# The template's own nets, whose output width was `num_classes` before tasks existed
OWN_NETS = ("descentlab.models.mlp.MLP", "descentlab.models.backbone.Backbone")


def upgraded(config: dict[str, Any]) -> dict[str, Any]:
    """A ``model`` config recorded by an older descentlab, in today's names: the module's
    ``_target_``, the template's nets' ``num_outputs`` (was ``num_classes``), and the
    classification task every run had before tasks existed. A config of today is returned
    as it is, so a checkpoint's recorded config and the config of its resume compare equal."""
    config = dict(config)
    target = config.get("_target_")
    config["_target_"] = RENAMED_TARGETS.get(target, target)
    net = config.get("net")
    if isinstance(net, dict) and net.get("_target_") in OWN_NETS and "num_classes" in net:
        net = {("num_outputs" if k == "num_classes" else k): v for k, v in net.items()}
        config["net"] = net
    if "task" not in config and isinstance(net, dict):
        outputs = net.get("num_outputs", net.get("num_classes"))
        config["task"] = {
            "_target_": "descentlab.tasks.Classification",
            "outputs": outputs,
            "monitor": "val/loss",
            "mode": "min",
            "objective": "val/acc",
        }
    return config


def build_optimizer(optimizer_config: dict[str, Any] | None):
    """The ``params -> Optimizer`` factory of the config (a Hydra ``_partial_``), if any."""
    from hydra.utils import instantiate

    return instantiate(optimizer_config) if optimizer_config else None


def model_config(checkpoint: dict, path) -> dict[str, Any]:
    """The resolved ``model`` config recorded in a training checkpoint."""
    config = (checkpoint.get(CONFIG_KEY) or {}).get("model")
    if not isinstance(config, dict) or "net" not in config:
        raise CheckpointError(
            f"checkpoint {path} does not record the model config it was trained with (written "
            f"by another program or an older descentlab); load it with "
            f"TaskModule.load_from_checkpoint(path, net=..., optimizer=...)"
        )
    return upgraded(config)
