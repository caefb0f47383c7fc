"""A torchvision classification model as a feature extractor with a new head.

``Backbone(name="resnet18", weights="DEFAULT")`` builds torchvision's model, loads its
pretrained weights the way torchvision does (download into torch hub's cache, or use
the file already there) but with ``weights_only=True``, replaces its classification
layer by ``nn.Identity`` (that is ``backbone``) and puts a fresh ``nn.Linear`` on top
(``head``). Grayscale and small inputs are adapted on the fly: channels repeated to
3, images resized to ``input_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.errors import CheckpointError, ParameterError
from descentlab.rules import NET, checked


def classification_models() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def _check_fresh_layers(
    model: nn.Module, name: str, layers: Sequence[str] | None
) -> tuple[str, ...]:
    """``model.net.fresh_layers`` as a tuple of module names of ``model``; one line if one is not."""
    if layers is None:
        return ()
    if isinstance(layers, str):
        layers = [layers]
    modules = {n for n, _ in model.named_modules() if n}
    for layer in layers:
        if layer not in modules:
            top = ", ".join(n for n, _ in model.named_children())
            raise ParameterError(
                "fresh_layers", list(layers), f"names of {name}'s modules, e.g. {top}"
            )
    return tuple(layers)


def _replace_last_linear(model: nn.Module) -> int:
    """Swap the model's last ``nn.Linear`` (its classifier) for ``nn.Identity``; return its in_features."""
    name, last = None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name, last = module_name, module
    if last is None:
        raise ParameterError(
            "name", type(model).__name__, "a torchvision classifier ending in nn.Linear"
        )
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return last.in_features


def load_pretrained_state_dict(name: str, weights: str) -> dict[str, Tensor]:
    """torchvision's weights ``name.weights`` from torch hub's cache (downloaded if missing).

    The file lives at ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``,
    exactly where ``torchvision`` puts it; loading uses ``weights_only=True``.
    """
    from torchvision import models

    enum = models.get_model_weights(name)
    try:
        chosen = enum.verify(weights)
    except (ValueError, KeyError):
        raise ParameterError(
            "weights", weights, f"null or one of {['DEFAULT', *[w.name for w in enum]]}"
        ) from None
    try:
        return torch.hub.load_state_dict_from_url(
            chosen.url, progress=True, check_hash=True, weights_only=True
        )
    except OSError as err:  # no network and nothing in the cache
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(chosen.url).name
        raise CheckpointError(
            f"cannot get {name} weights {chosen.name}: {cached} is missing and downloading failed ({err})"
        ) from None


class Backbone(nn.Module):
    """``head(backbone(adapt(x)))``: a torchvision classifier's features and a new linear head.

    Args:
        name: any torchvision classification model (``resnet18``, ``mobilenet_v3_small``, ...).
        num_outputs: the head's width (the task's ``outputs``: classes, target values, 1).
        input_shape: (C, H, W) of the data; C = 1 is repeated to 3 channels.
        weights: a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``, ...) or ``None``.
        checkpoint: a ``model.pt`` of an earlier descentlab run: its ``backbone.*`` weights
            are loaded (the head is new, so the class count may differ).
        freeze: train the head only (and ``fresh_layers``).
        input_size: images smaller than this are resized up to it (bilinear).
        fresh_layers: names of backbone modules (``layer4``, ``features.12``) that keep their
            random initialization when ``weights`` or ``checkpoint`` are loaded: new layers,
            like the head. Top layers are the most specific to the task they were trained
            on (Yosinski et al. 2014, "How transferable are features in deep neural
            networks?"); starting them fresh keeps the general lower layers only.
            ``freeze`` leaves them trainable.
    """

    @checked
    def __init__(
        self,
        name: str,
        num_outputs: int,
        input_shape=(3, 32, 32),
        weights: str | None = None,
        checkpoint: str | None = None,
        freeze: Annotated[bool, NET["freeze"]] = False,
        input_size: int = 32,
        fresh_layers: Sequence[str] | None = None,
    ):
        super().__init__()
        from torchvision import models

        if name not in classification_models():
            raise ParameterError(
                "name",
                name,
                "a torchvision classification model, e.g. resnet18, mobilenet_v3_small",
            )
        model = models.get_model(name, weights=None)
        self.fresh_layers = _check_fresh_layers(model, name, fresh_layers)
        initial = {k: v.clone() for k, v in model.state_dict().items() if self._is_fresh(k)}
        if weights is not None:
            model.load_state_dict(load_pretrained_state_dict(name, weights))
        features = _replace_last_linear(model)
        for layer in self.fresh_layers:  # e.g. fc: the classifier the new head replaced
            if not any(True for _ in model.get_submodule(layer).state_dict()):
                raise ParameterError(
                    "fresh_layers",
                    list(self.fresh_layers),
                    f"{layer} holds no weights once {name}'s classifier is replaced by the "
                    "new head (which always starts fresh)",
                )
        self.backbone = model
        self.head = nn.Linear(features, num_outputs)
        self.name, self.num_outputs = name, num_outputs
        self.input_shape, self.input_size = tuple(input_shape), input_size
        if checkpoint is not None:
            self.load_backbone(checkpoint)
        if initial:  # the fresh layers go back to their random initialization
            self.backbone.load_state_dict(initial, strict=False)
        self.frozen = freeze  # model.net.freeze: the backbone never trains (no probe schedule)
        if freeze:
            for parameter in self.pretrained_parameters():
                parameter.requires_grad_(False)

    def _is_fresh(self, qualified_name: str) -> bool:
        return any(
            qualified_name == layer or qualified_name.startswith(layer + ".")
            for layer in self.fresh_layers
        )

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The backbone's parameters, less those of ``fresh_layers``."""
        return [p for n, p in self.backbone.named_parameters() if not self._is_fresh(n)]

    def fresh_modules(self) -> list[nn.Module]:
        """The modules named by ``fresh_layers`` (random init when weights load)."""
        return [self.backbone.get_submodule(layer) for layer in self.fresh_layers]

    def pretrained_modules(self) -> list[nn.Module]:
        """The backbone's modules outside ``fresh_layers`` (for BatchNorm modes)."""
        return [m for n, m in self.backbone.named_modules() if n and not self._is_fresh(n)]

    def load_backbone(self, path: str) -> None:
        from descentlab.torchfile import load_checkpoint

        # one-line CheckpointError for a missing, corrupt or unsafe file (weights_only=True)
        state = load_checkpoint(path)
        state = state.get("state_dict", state)
        backbone = {k.split("backbone.", 1)[1]: v for k, v in state.items() if "backbone." in k}
        if not backbone:
            raise CheckpointError(f"model.net.checkpoint={path!r} holds no backbone.* weights")
        try:
            self.backbone.load_state_dict(backbone)
        except RuntimeError as err:
            raise CheckpointError(
                f"model.net.checkpoint={path!r} does not fit {self.name}: {str(err).splitlines()[0]}"
            ) from None

    def adapt(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < self.input_size:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self.adapt(x)))
