"""The transfer recipe: parameter groups, linear probe then fine-tune, BatchNorm statistics,
fresh top layers; a one-sample batch under BatchNorm."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from descentlab.models.backbone import Backbone
from descentlab.run.train import run
from helpers.cli import one_error_line, read_metrics, run_cli, without_timings


def backbone_model(make_cfg, *overrides):
    return instantiate(make_cfg("model=backbone", "model.net.name=resnet18", *overrides).model)


def test_the_backbone_trains_at_a_fraction_of_the_heads_learning_rate(make_cfg):
    model = backbone_model(
        make_cfg, "model.backbone_lr_ratio=0.1", "optimizer=torch_sgd", "optimizer.lr=0.5"
    )
    head, body = model.configure_optimizers().param_groups
    assert head["lr"] == 0.5 and body["lr"] == pytest.approx(0.05)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.net.head.parameters()}
    assert {id(p) for p in body["params"]} == {id(p) for p in model.net.backbone.parameters()}
    plain = backbone_model(make_cfg).configure_optimizers().param_groups
    assert len(plain) == 1  # the default: one group, as before


def batch_norms(model) -> list[nn.Module]:
    return [m for m in model.net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]


def test_probe_epochs_train_the_head_alone_with_frozen_batchnorm_then_everything(make_cfg):
    cfg = make_cfg(
        "model=backbone",
        "model.net.name=resnet18",
        "model.probe_epochs=1",
        "trainer.max_epochs=2",
        "data.train_fraction=0.05",
        "logger=none",
        "callbacks.early_stopping=null",
    )
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
    cfg = make_cfg(
        "model=backbone",
        "model.net.name=resnet18",
        "model.bn_stats=frozen",
        "trainer.max_epochs=1",
        "data.train_fraction=0.05",
        "logger=none",
    )
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
    donor = Backbone("resnet18", num_outputs=5, input_shape=(1, 8, 8))
    path = tmp_path / "model.pt"
    torch.save(donor.state_dict(), path)
    return str(path), donor.backbone.state_dict()


def test_fresh_layers_keep_their_random_init_and_the_rest_loads(tmp_path):
    path, donor = saved_backbone(tmp_path, seed=1)
    torch.manual_seed(2)
    scratch = Backbone("resnet18", num_outputs=5, input_shape=(1, 8, 8)).backbone.state_dict()
    torch.manual_seed(2)  # the same draw as scratch, then the checkpoint on top
    net = Backbone(
        "resnet18", num_outputs=5, input_shape=(1, 8, 8), checkpoint=path, fresh_layers=["layer4"]
    )
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
    net = Backbone(
        "resnet18",
        num_outputs=5,
        input_shape=(1, 8, 8),
        checkpoint=path,
        freeze=True,
        fresh_layers=["layer4"],
    )
    trainable = {n.split(".")[0] for n, p in net.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}


def test_gradual_unfreezing_trains_fresh_layers_from_the_first_epoch(make_cfg, tmp_path):
    import lightning as L

    path, _ = saved_backbone(tmp_path, seed=1)
    cfg = make_cfg(
        "model=backbone",
        "model.net.name=resnet18",
        f"model.net.checkpoint={path}",
        "model.net.fresh_layers=[layer4]",
        "callbacks=[default,finetune]",
        "trainer.max_epochs=1",
        "data.train_fraction=0.05",
    )
    model = instantiate(cfg.model)
    before = {k: v.clone() for k, v in model.net.backbone.state_dict().items() if "conv" in k}
    changed = {}

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            state = module.net.backbone.state_dict()
            for top in ("layer1", "layer4"):
                keys = [k for k in before if k.startswith(top + ".")]
                changed[top] = any(not torch.equal(state[k], before[k]) for k in keys)

    unfreezing = instantiate(cfg.callbacks.backbone_finetuning)  # unfreezes at epoch 5
    trainer = instantiate(
        cfg.trainer, callbacks=[unfreezing, Record()], logger=False, enable_checkpointing=False
    )
    trainer.fit(model, datamodule=instantiate(cfg.data))
    assert changed == {"layer1": False, "layer4": True}  # pretrained frozen, fresh trained


def test_a_run_resumed_after_the_unfreezing_epoch_trains_its_backbone(make_cfg, tmp_path):
    path, _ = saved_backbone(tmp_path, seed=1)
    args = [
        "model=backbone",
        "model.net.name=resnet18",
        f"model.net.checkpoint={path}",
        "callbacks=[default,finetune]",
        "data.train_fraction=0.05",
        "logger=none",
        "callbacks.backbone_finetuning.unfreeze_backbone_at_epoch=1",
    ]
    run(make_cfg(*args, "trainer.max_epochs=2", subdir="run"))  # unfrozen in epoch 1
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=False)["state_dict"]["net.backbone.conv1.weight"]
    run(make_cfg(*args, "trainer.max_epochs=3", "ckpt_path=last", subdir="run"))
    after = torch.load(last, weights_only=False)
    assert after["epoch"] == 2
    # Lightning's callback left the resumed backbone frozen: conv1 did not move in epoch 2
    assert not torch.equal(after["state_dict"]["net.backbone.conv1.weight"], before)
    run(make_cfg(*args, "trainer.max_epochs=3", subdir="straight"))  # never interrupted
    histories = [
        {
            epoch: without_timings(metrics)
            for epoch, metrics in json.loads((tmp_path / d / "history.json").read_text())[
                "epochs"
            ].items()
        }
        for d in ("run", "straight")
    ]
    assert histories[0] == histories[1]


def test_gradual_unfreezing_through_the_cli_unfreezes_without_lightnings_warning(tmp_path):
    # at the unfreezing epoch Lightning warns that params "already exist" in the optimizer:
    # the BatchNorm layers (train_bn) and fresh layers that trained from the start, by design
    run_dir = tmp_path / "run"
    proc = run_cli(
        [
            "model=backbone",
            "model.net.name=resnet18",
            "callbacks=[default,finetune]",
            "callbacks.backbone_finetuning.unfreeze_backbone_at_epoch=1",
            "trainer.max_epochs=2",
            "data.train_fraction=0.05",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        env={"PYTHONWARNINGS": "default"},
    )
    assert read_metrics(run_dir)["epochs"] == 2
    assert "already exist" not in proc.stderr + proc.stdout, proc.stderr[-2000:]


def test_frozen_statistics_apply_to_pretrained_layers_only(make_cfg, tmp_path):
    path, _ = saved_backbone(tmp_path, seed=1)
    model = backbone_model(
        make_cfg,
        f"model.net.checkpoint={path}",
        "model.bn_stats=frozen",
        "model.net.fresh_layers=[layer4]",
        "data=digits",
    )
    model.train()
    modes = {
        n.split(".")[0]: m.training
        for n, m in model.net.backbone.named_modules()
        if isinstance(m, nn.BatchNorm2d)
    }
    assert [top for top, training in modes.items() if training] == ["layer4"]
    assert set(modes) == {"bn1", "layer1", "layer2", "layer3", "layer4"}


def test_a_fresh_layer_that_is_not_a_module_is_one_line(tmp_path):
    proc = run_cli(
        [
            "model=backbone",
            "model.net.fresh_layers=[layer9]",
            "logger=none",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    line = one_error_line(proc)
    assert "model.net.fresh_layers=['layer9']" in line and "layer4" in line, line


def one_over(make_cfg, *overrides: str) -> int:
    """A batch size that leaves exactly 1 training sample over (per rank under DDP)."""
    data = instantiate(make_cfg(*overrides).data)
    data.setup("fit")
    return len(data.train_dataloader().x) - 1


def test_a_one_sample_last_batch_uses_batchnorms_running_statistics(make_cfg, tmp_path):
    """The train split's size leaves 1 over the batch size: BatchNorm cannot normalize one
    sample by its own statistics (torch raises), so that batch uses the running statistics,
    with one log line, and still trains (2 steps)."""
    overrides = ["model=backbone", "data.train_fraction=0.05", "trainer.max_epochs=1"]
    overrides += ["logger=none"]
    run_dir = tmp_path / "run"
    batch_size = one_over(make_cfg, *overrides)
    proc = run_cli([*overrides, f"data.batch_size={batch_size}", f"hydra.run.dir={run_dir}"])
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["global_step"] == 2
    output = proc.stdout + proc.stderr
    assert output.count("a training batch of 1 sample") == 1, output[-3000:]


@pytest.mark.slow
def test_a_one_sample_batch_under_ddp_trains_on_every_rank(make_cfg, tmp_path):
    """Each of the 2 ranks gets a 1-sample batch at once; returning None there is refused by
    Lightning under DDP (it was a traceback)."""
    overrides = ["model=backbone", "data.train_fraction=0.1", "trainer.max_epochs=1"]
    overrides += ["logger=none", "callbacks.progress_bar=null"]
    per_rank = (one_over(make_cfg, *overrides) + 1) // 2  # each rank: floor(n / 2) samples
    batch_size = per_rank - 1
    run_dir = tmp_path / "run"
    run_cli(
        [*overrides, "trainer=ddp_cpu", f"data.batch_size={batch_size}", f"hydra.run.dir={run_dir}"]
    )
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["global_step"] == 2, metrics


def test_batch_size_1_with_batchnorm_is_one_line(tmp_path):
    proc = run_cli(
        [
            "model=backbone",
            "data.train_fraction=0.05",
            "data.batch_size=1",
            "logger=none",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    line = one_error_line(proc)
    assert "data.batch_size=1" in line and "BatchNorm" in line, line


def test_a_fresh_layer_with_no_weights_is_one_line():
    from descentlab.errors import ConfigError

    with pytest.raises(ConfigError, match="fc holds no weights"):
        Backbone("resnet18", num_outputs=5, fresh_layers=["fc"])  # the replaced classifier


@pytest.mark.slow
def test_a_fine_tuned_run_resumes_after_its_pretrained_file_moved(tmp_path):
    """The checkpoint holds every weight: model.net.checkpoint (the starting weights) is not
    read again on resume (it was a one-line refusal, so the run could never be resumed)."""
    quick = ["data.train_fraction=0.05", "logger=none", "callbacks.progress_bar=null"]
    run_cli(["model=backbone", *quick, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'pre'}"])
    pretrained = tmp_path / "pre" / "model.pt"
    recipe = ["+experiment=finetune_backbone", *quick, "trainer.max_epochs=2"]
    tuned = [*recipe, f"pretrained={pretrained}", f"hydra.run.dir={tmp_path / 'ft'}"]
    run_cli([*tuned, "trainer.max_steps=3"])  # stopped in its first epoch
    pretrained.rename(tmp_path / "moved.pt")
    run_cli([*tuned, "ckpt_path=last"])
    metrics = read_metrics(tmp_path / "ft")
    assert metrics["status"] == "completed" and metrics["epochs"] == 2, metrics
    fresh_run = [*recipe, f"pretrained={pretrained}", f"hydra.run.dir={tmp_path / 'new'}"]
    proc = run_cli(fresh_run, check=False)  # not resuming: the file is needed, and gone
    assert "model.net.checkpoint" in one_error_line(proc)
    # a resume without the run's own overrides: one line naming the missing one
    proc = run_cli([*recipe, "ckpt_path=last", f"hydra.run.dir={tmp_path / 'ft'}"], check=False)
    line = one_error_line(proc)
    assert "pretrained='???'" in line and "a resume takes the overrides" in line, line
    # the recipe's cosine schedule follows trainer.max_epochs: a longer run is another schedule
    proc = run_cli([*tuned, "trainer.max_epochs=4", "ckpt_path=last"], check=False)
    line = one_error_line(proc)
    assert "model.scheduler.T_max (= ${trainer.max_epochs}): 2 -> 4" in line, line
    # and "nothing to resume" does not advise raising trainer.max_epochs for it
    proc = run_cli([*tuned, "ckpt_path=last"])
    assert "nothing to resume" in proc.stderr and "a longer run is a new run" in proc.stderr
