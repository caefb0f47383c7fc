"""Check the composed config before any data is loaded: one clear line per mistake."""

from __future__ import annotations

from omegaconf import DictConfig

from descentlab.errors import ConfigError


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the key, the value and what is allowed."""
    data = cfg.data
    batch_size = data.get("batch_size")
    if not (batch_size == "full" or (isinstance(batch_size, int) and batch_size > 0)):
        raise ConfigError("data.batch_size", batch_size, "a positive integer or 'full'")
    fraction = data.get("train_fraction", 1.0)
    if not (0 < fraction <= 1):
        raise ConfigError("data.train_fraction", fraction, "a number in (0, 1]")
    classes = data.get("classes")
    if classes is not None:
        n = data.get("num_classes_total", 10)
        if len(classes) == 0 or any(not isinstance(c, int) or not 0 <= c < n for c in classes):
            raise ConfigError(
                "data.classes", list(classes), f"a non-empty list of class ids in 0..{n - 1}"
            )
    net = cfg.model.get("net", {})
    for width in net.get("hidden_dims", []) or []:
        if not isinstance(width, int) or width <= 0:
            raise ConfigError("model.net.hidden_dims", list(net.hidden_dims), "positive integers")
    dropout = net.get("dropout", 0.0) or 0.0
    if not (0 <= dropout < 1):
        raise ConfigError("model.net.dropout", dropout, "a rate in [0, 1)")
    optimizer = cfg.model.get("optimizer", {})
    lr = optimizer.get("lr")
    if lr is not None and not lr > 0:
        raise ConfigError("optimizer.lr", lr, "a positive number")
    for key in ("mu", "momentum", "beta"):
        value = optimizer.get(key)
        if value is not None and not (0 <= value < 1):
            raise ConfigError(f"optimizer.{key}", value, "a number in [0, 1)")
    betas = optimizer.get("betas")
    if betas is not None and not all(0 <= b < 1 for b in betas):
        raise ConfigError("optimizer.betas", list(betas), "two numbers in [0, 1)")
    weight_decay = cfg.model.get("weight_decay", 0.0)
    if weight_decay is not None and weight_decay < 0:
        raise ConfigError("model.weight_decay", weight_decay, "a number >= 0")
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is not None and max_epochs != -1 and max_epochs <= 0:
        raise ConfigError(
            "trainer.max_epochs", max_epochs, "a positive integer (or -1 for no limit)"
        )
