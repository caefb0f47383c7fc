"""The transfer recipe: parameter groups, linear probe then fine-tune, BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from descentlab.train import run


def backbone_model(make_cfg, *overrides):
    return instantiate(make_cfg("model=backbone", "model.net.name=resnet18", *overrides).model)


def test_the_backbone_trains_at_a_fraction_of_the_heads_learning_rate(make_cfg):
    model = backbone_model(make_cfg, "model.backbone_lr_ratio=0.1", "optimizer=torch_sgd",
                           "optimizer.lr=0.5")  # fmt: skip
    head, body = model.configure_optimizers().param_groups
    assert head["lr"] == 0.5 and body["lr"] == pytest.approx(0.05)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.net.head.parameters()}
    assert {id(p) for p in body["params"]} == {id(p) for p in model.net.backbone.parameters()}
    plain = backbone_model(make_cfg).configure_optimizers().param_groups
    assert len(plain) == 1  # the default: one group, as before


def batch_norms(model) -> list[nn.Module]:
    return [m for m in model.net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]


def test_probe_epochs_train_the_head_alone_with_frozen_batchnorm_then_everything(make_cfg):
    cfg = make_cfg("model=backbone", "model.net.name=resnet18", "model.probe_epochs=1",
                   "trainer.max_epochs=2", "data.train_fraction=0.05", "logger=none",
                   "callbacks.early_stopping=null")  # fmt: skip
    model = instantiate(cfg.model)
    before = {k: v.clone() for k, v in model.net.backbone.state_dict().items()}
    seen = {}

    import lightning as L

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            state = module.net.backbone.state_dict()
            seen[trainer.current_epoch] = {
                "backbone_changed": any(not torch.equal(state[k], before[k]) for k in before),
                "bn_training": any(m.training for m in batch_norms(module)),
                "head_training": module.net.head.training,
            }

    from hydra.utils import instantiate as build

    trainer = build(cfg.trainer, callbacks=[Record()], logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=build(cfg.data))
    assert seen[0] == {"backbone_changed": False, "bn_training": False, "head_training": True}
    assert seen[1]["backbone_changed"] and seen[1]["bn_training"]


def test_frozen_batchnorm_statistics_stay_the_pretrained_ones(make_cfg):
    cfg = make_cfg("model=backbone", "model.net.name=resnet18", "model.bn_stats=frozen",
                   "trainer.max_epochs=1", "data.train_fraction=0.05", "logger=none")  # fmt: skip
    metrics = run(cfg)
    assert metrics["status"] == "completed"
    model = instantiate(cfg.model)
    saved = torch.load(f"{cfg.paths.output_dir}/model.pt", weights_only=True)
    stats = [k for k in saved if k.endswith(("running_mean", "running_var"))]
    fresh = model.net.state_dict()
    assert stats and all(torch.equal(saved[k], fresh[k]) for k in stats)  # not moved by the data
    weights = [k for k in saved if k.startswith("backbone.conv1.weight")]
    assert not torch.equal(saved[weights[0]], fresh[weights[0]])  # while the weights trained
