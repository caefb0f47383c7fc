"""Pretrained backbones: torchvision models, weights from the hub cache, freezing, transfer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torchvision import models

from descentlab.errors import CheckpointError, ConfigError
from descentlab.models.backbone import Backbone
from descentlab.run.train import run
from helpers.cli import read_metrics, run_cli


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_any_torchvision_classifier_gets_a_new_head_and_adapted_inputs(name):
    net = Backbone(name, num_outputs=5, input_shape=(1, 8, 8))
    out = net(torch.rand(2, 1, 8, 8))  # grayscale 8x8 -> 3 x 32 x 32 inside
    assert out.shape == (2, 5) and net.head.out_features == 5
    assert not any(isinstance(m, torch.nn.Linear) and m.out_features == 1000 for m in net.modules())


def test_unknown_backbone_name_is_a_config_error():
    with pytest.raises(ConfigError, match="^name='resnet1000'"):
        Backbone("resnet1000", num_outputs=10)


def test_weights_load_from_torch_hubs_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(7)
    reference = models.mobilenet_v3_small()
    torch.save(reference.state_dict(), cached)
    net = Backbone("mobilenet_v3_small", num_outputs=10, weights="IMAGENET1K_V1")
    loaded = net.backbone.state_dict()
    for key, value in reference.state_dict().items():
        if key.startswith("classifier.3."):  # the replaced 1000-class layer
            assert key not in loaded
            continue
        assert torch.equal(loaded[key], value), key
    assert len(loaded) == len(reference.state_dict()) - 2


def test_weights_that_would_run_code_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    cached.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"x": Exploit(str(marker))}, cached)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        Backbone("mobilenet_v3_small", num_outputs=10, weights="IMAGENET1K_V1")
    assert not marker.exists()


class Exploit:
    """Unpickling this runs code (creates a file) — unless the loader refuses it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_unknown_weights_name_is_a_config_error():
    with pytest.raises(ConfigError, match="^weights="):
        Backbone("resnet18", num_outputs=10, weights="IMAGENET9K")


def test_freeze_trains_the_head_only(make_cfg):
    model = instantiate(
        make_cfg(
            "model=backbone", "model.net.name=mobilenet_v3_small", "model.net.freeze=true"
        ).model
    )
    optimizer = model.configure_optimizers()
    trainable = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trainable == {id(p) for p in model.net.head.parameters()}
    assert model.backbone is model.net.backbone


def test_missing_or_bad_backbone_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Backbone("resnet18", num_outputs=5, checkpoint=str(tmp_path / "nope.pt"))
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="trunc.pt is corrupt or truncated"):
        Backbone("resnet18", num_outputs=5, checkpoint=str(tmp_path / "trunc.pt"))


@pytest.mark.slow
def test_gradual_unfreezing_with_backbone_finetuning(make_cfg):
    cfg = make_cfg(
        "model=backbone",
        "model.net.name=resnet18",
        "callbacks=[default,finetune]",
        "callbacks.backbone_finetuning.unfreeze_backbone_at_epoch=1",
        "trainer.max_epochs=2",
        "data.train_fraction=0.1",
        "logger=none",
    )
    metrics = run(cfg)
    assert metrics["epochs"] == 2


@pytest.mark.slow
def test_fine_tuning_wins_at_3_percent_of_the_labels_and_ties_at_30(tmp_path):
    """docs/transfer.md's table at two of its label fractions, for seed 1 (one of the table's
    8 seeds) with the table's commands: one pretrained network (seed 12345), then
    +experiment=finetune_backbone with its model.pt against pretrained=null. At 3 % the
    recipe won every seed by 0.31 to 0.65 (mean +0.48); at 30 % the arms tie (the 8 seeds
    split 4-3, paired differences within ±0.035, mean +0.003): fine-tuning must not lose
    there by more than 0.02.

    Seed 12345 (not a seed of the table) was used here before; with the library versions of
    2026-12 its scratch arm reached 0.549 at 3 % (seeds 1, 2, 3: 0.156, 0.170, 0.462), a
    win of only +0.15: a single seed's scratch arm at 35 images is that noisy. Seed 1 gave
    0.672 vs 0.156 at 3 % and 0.946 vs 0.925 at 30 % on 2026-12-04 with two threads, and
    0.683 vs 0.204, 0.968 vs 0.952 with one (OMP_NUM_THREADS=1, as the suite runs it and as
    the table's runs were made)."""
    pretrain = tmp_path / "pretrain"
    run_cli(
        [
            "+experiment=pretrain_backbone",
            f"hydra.run.dir={pretrain}",
            "logger=none",
            "callbacks.progress_bar=null",
        ]
    )
    assert read_metrics(pretrain)["test/acc"] > 0.9
    results = {}
    for fraction in (0.03, 0.3):
        for label, ckpt in (("finetuned", str(pretrain / "model.pt")), ("scratch", "null")):
            run_dir = tmp_path / f"{label}-{fraction}"
            run_cli(
                [
                    "+experiment=finetune_backbone",
                    f"pretrained={ckpt}",
                    f"data.train_fraction={fraction}",
                    "seed=1",
                    f"hydra.run.dir={run_dir}",
                    "logger=none",
                    "callbacks.progress_bar=null",
                ]
            )
            results[label, fraction] = read_metrics(run_dir)["test/acc"]
    assert results["finetuned", 0.03] >= results["scratch", 0.03] + 0.2, results
    assert results["finetuned", 0.3] >= results["scratch", 0.3] - 0.02, results
