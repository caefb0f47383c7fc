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
            f"Classifier.load_from_checkpoint(path, net=..., optimizer=...)"
        )
    return config
