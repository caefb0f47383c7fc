"""The transfer recipe: parameter groups, linear probe then fine-tune, BatchNorm statistics,
fresh top layers; a one-sample batch under BatchNorm."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from conftest import one_error_line, read_metrics, run_cli
from descentlab.models.backbone import Backbone
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


# -- model.net.fresh_layers: transfer the lower layers, start the top ones fresh -----------


def saved_backbone(tmp_path, seed: int) -> tuple[str, dict]:
    """A model.pt as a run writes it, with a ResNet-18 backbone drawn from ``seed``."""
    torch.manual_seed(seed)
    donor = Backbone("resnet18", num_classes=5, input_shape=(1, 8, 8))
    path = tmp_path / "model.pt"
    torch.save(donor.state_dict(), path)
    return str(path), donor.backbone.state_dict()


def test_fresh_layers_keep_their_random_init_and_the_rest_loads(tmp_path):
    path, donor = saved_backbone(tmp_path, seed=1)
    torch.manual_seed(2)
    scratch = Backbone("resnet18", num_classes=5, input_shape=(1, 8, 8)).backbone.state_dict()
    torch.manual_seed(2)  # the same draw as scratch, then the checkpoint on top
    net = Backbone("resnet18", num_classes=5, input_shape=(1, 8, 8), checkpoint=path,
                   fresh_layers=["layer4"])  # fmt: skip
    loaded = net.backbone.state_dict()
    fresh = [k for k in loaded if k.startswith("layer4.")]
    kept = [k for k in loaded if not k.startswith("layer4.")]
    assert fresh and kept
    assert all(torch.equal(loaded[k], scratch[k]) for k in fresh)
    convs = [k for k in fresh if "conv" in k]  # (BatchNorm weights start at 1 in both)
    assert convs and not any(torch.equal(loaded[k], donor[k]) for k in convs)
    assert all(torch.equal(loaded[k], donor[k]) for k in kept)


def test_freeze_leaves_fresh_layers_trainable(tmp_path):
    path, _ = saved_backbone(tmp_path, seed=1)
    net = Backbone("resnet18", num_classes=5, input_shape=(1, 8, 8), checkpoint=path,
                   freeze=True, fresh_layers=["layer4"])  # fmt: skip
    trainable = {n.split(".")[0] for n, p in net.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}


def test_frozen_statistics_apply_to_pretrained_layers_only(make_cfg, tmp_path):
    path, _ = saved_backbone(tmp_path, seed=1)
    model = backbone_model(make_cfg, f"model.net.checkpoint={path}", "model.bn_stats=frozen",
                           "model.net.fresh_layers=[layer4]", "data=digits")  # fmt: skip
    model.train()
    modes = {n.split(".")[0]: m.training for n, m in model.net.backbone.named_modules()
             if isinstance(m, nn.BatchNorm2d)}  # fmt: skip
    assert [top for top, training in modes.items() if training] == ["layer4"]
    assert set(modes) == {"bn1", "layer1", "layer2", "layer3", "layer4"}


def test_a_fresh_layer_that_is_not_a_module_is_one_line(tmp_path):
    proc = run_cli(["model=backbone", "model.net.fresh_layers=[layer9]", "logger=none",
                    f"hydra.run.dir={tmp_path / 'run'}"], check=False)  # fmt: skip
    line = one_error_line(proc)
    assert "model.net.fresh_layers=['layer9']" in line and "layer4" in line, line


def test_a_one_sample_last_batch_is_skipped_under_batchnorm(make_cfg, tmp_path):
    """The train split's size leaves 1 over the batch size: BatchNorm cannot normalize one
    sample (torch raises), so that step is skipped with one log line, and the run completes."""
    overrides = ["model=backbone", "data.train_fraction=0.05", "trainer.max_epochs=1"]
    overrides += ["logger=none"]
    data = instantiate(make_cfg(*overrides).data)
    data.setup("fit")
    n_train = len(data.train_dataloader().x)
    run_dir = tmp_path / "run"
    proc = run_cli([*overrides, f"data.batch_size={n_train - 1}", f"hydra.run.dir={run_dir}"])
    assert read_metrics(run_dir)["status"] == "completed"
    output = proc.stdout + proc.stderr
    assert output.count("skipping a training batch of 1 sample") == 1, output[-3000:]
    assert "training_step` returned `None`" not in output  # Lightning's warning: on purpose
