"""Check the composed config before any data is loaded: one clear line per mistake.

Each check names the key, the value given and what is allowed (:class:`ConfigError`).
Hydra itself rejects unknown group options and keys before we get here.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from descentlab.errors import ConfigError


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_data(data: DictConfig) -> None:
    batch_size = data.get("batch_size")
    if not (batch_size == "full" or _positive_int(batch_size)):
        raise ConfigError("data.batch_size", batch_size, "a positive integer or 'full'")
    if not _positive_int(data.get("eval_batch_size", 1)):
        raise ConfigError("data.eval_batch_size", data.get("eval_batch_size"), "a positive integer")
    fraction = data.get("train_fraction", 1.0)
    if not isinstance(fraction, (int, float)) or not (0 < fraction <= 1):
        raise ConfigError("data.train_fraction", fraction, "a number in (0, 1]")
    classes = data.get("classes")
    if classes is not None:
        total = data.get("num_classes_total", 10)
        values = list(classes)
        if (
            not values
            or any(not isinstance(c, int) or not 0 <= c < total for c in values)
            or len(set(values)) != len(values)
        ):
            raise ConfigError(
                "data.classes", values, f"a non-empty list of distinct class ids in 0..{total - 1}"
            )


def _check_net(net: DictConfig) -> None:
    hidden = net.get("hidden_dims")
    if hidden is not None and not all(_positive_int(w) for w in hidden):
        raise ConfigError("model.net.hidden_dims", list(hidden), "a list of positive integers")
    dropout = net.get("dropout", 0.0)
    if dropout is not None and not (0 <= dropout < 1):
        raise ConfigError("model.net.dropout", dropout, "a rate in [0, 1)")
    if str(net.get("_target_", "")).endswith("Backbone"):
        from descentlab.models.backbone import classification_models

        if net.get("name") not in classification_models():
            raise ConfigError(
                "model.net.name",
                net.get("name"),
                "a torchvision classification model, e.g. resnet18, mobilenet_v3_small",
            )
    checkpoint = net.get("checkpoint")
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise ConfigError(
            "model.net.checkpoint",
            checkpoint,
            "an existing file (model.pt of an earlier run) or null",
        )


def _check_optimizer(optimizer: DictConfig) -> None:
    lr = optimizer.get("lr")
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError("optimizer.lr", lr, "a positive number")
    for key in ("mu", "momentum", "beta", "dampening"):
        value = optimizer.get(key)
        if value is not None and not (0 <= value < 1):
            raise ConfigError(f"optimizer.{key}", value, "a number in [0, 1)")
    betas = optimizer.get("betas")
    if betas is not None and not all(0 <= b < 1 for b in betas):
        raise ConfigError("optimizer.betas", list(betas), "two numbers in [0, 1)")
    weight_decay = optimizer.get("weight_decay")
    if weight_decay is not None and weight_decay < 0:
        raise ConfigError("optimizer.weight_decay", weight_decay, "a number >= 0")


def _check_trainer(trainer: DictConfig) -> None:
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and max_epochs != -1 and not _positive_int(max_epochs):
        raise ConfigError(
            "trainer.max_epochs", max_epochs, "a positive integer (or -1 for no limit)"
        )
    min_epochs = trainer.get("min_epochs")
    if min_epochs is not None and (not isinstance(min_epochs, int) or min_epochs < 0):
        raise ConfigError("trainer.min_epochs", min_epochs, "an integer >= 0")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first invalid value found."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            missing[0], "???", "a value is required here (set it on the command line)"
        )
    _check_data(cfg.data)
    _check_net(cfg.model.get("net", {}))
    _check_optimizer(cfg.model.get("optimizer", {}))
    l2_penalty = cfg.model.get("l2_penalty", 0.0)
    if l2_penalty is not None and l2_penalty < 0:
        raise ConfigError("model.l2_penalty", l2_penalty, "a number >= 0")
    _check_trainer(cfg.trainer)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path not in (None, "", "last") and not os.path.isfile(ckpt_path):
        raise ConfigError("ckpt_path", ckpt_path, "an existing checkpoint file, 'last', or null")
