"""Lean, portable checkpoints: the weights stored once per file, writes through fsspec URLs."""

from __future__ import annotations

import fsspec
import pytest
import torch

from descentlab.errors import CheckpointError
from descentlab.run.train import run
from descentlab.storage.checkpoints import SafeCheckpointIO
from descentlab.torchfile import load_checkpoint

QUICK = ["logger=none", "trainer.max_epochs=2"]


def tensor_bytes(tree) -> int:
    """Bytes of every tensor in a nested dict/list (what torch.save must store)."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(tensor_bytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(tensor_bytes(v) for v in tree)
    return 0


def test_a_checkpoint_is_the_weights_plus_the_optimizer_state(make_cfg, tmp_path):
    run(make_cfg(*QUICK))
    path = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(path)
    weights = sum(
        v.numel() * v.element_size()
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    )
    optimizer = tensor_bytes(checkpoint["optimizer_states"])
    assert (
        2 * weights <= optimizer < 2 * weights + 1_000
    )  # Adam: two moments per weight, a step count
    # Everything else (metric sums, loops, config, zip headers) is small: no second copy
    # of the weights (early stopping's best weights used to be one, +33 %).
    assert weights + optimizer < path.stat().st_size < (weights + optimizer) * 1.05 + 32_000
    callbacks = checkpoint["callbacks"]
    assert tensor_bytes(callbacks) < 1_000, {k: tensor_bytes(v) for k, v in callbacks.items()}


def test_checkpoints_go_to_an_fsspec_url(make_cfg, tmp_path):
    url = f"memory://{tmp_path.name}/checkpoints"
    metrics = run(
        make_cfg(
            *QUICK,
            f"callbacks.model_checkpoint.dirpath={url}",
            f"callbacks.last_checkpoint.dirpath={url}",
        )
    )
    fs = fsspec.filesystem("memory")
    assert sorted(
        p.rsplit("/", 1)[1] for p in fs.ls(f"/{tmp_path.name}/checkpoints", detail=False)
    ) == [
        "best.ckpt",
        "last.ckpt",
    ]
    assert metrics["ckpt_path"] == f"{url}/best.ckpt"
    assert not (tmp_path / "checkpoints").exists()
    best = load_checkpoint(metrics["ckpt_path"])
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    assert best["epoch"] == metrics["best_epoch"]
    for key, value in kept.items():
        assert torch.equal(best["state_dict"][f"net.{key}"], value), key


def test_a_remote_write_keeps_the_good_checkpoint_when_weights_are_not_finite():
    url = "memory://finite-only/a.ckpt"
    io = SafeCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, url)
    io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("inf"), 0.0])}}, url)
    assert torch.equal(load_checkpoint(url)["state_dict"]["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint("memory://finite-only/missing.ckpt")
    fsspec.filesystem("memory").pipe("/finite-only/junk.ckpt", b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint("memory://finite-only/junk.ckpt")


def test_a_run_resumes_from_an_fsspec_url(make_cfg, tmp_path):
    url = f"memory://{tmp_path.name}-resume/checkpoints"
    where = [
        f"callbacks.model_checkpoint.dirpath={url}",
        f"callbacks.last_checkpoint.dirpath={url}",
    ]
    run(make_cfg(*where, "logger=none", "trainer.max_epochs=1", subdir="first"))
    resumed = run(
        make_cfg(
            *where,
            "logger=none",
            "trainer.max_epochs=2",
            f"ckpt_path={url}/last.ckpt",
            subdir="second",
        )
    )
    assert resumed["epochs"] == 2 and resumed["global_step"] == 2 * 19  # epoch 0 not trained again
    memory = fsspec.filesystem("memory")
    assert memory.isfile(f"/{tmp_path.name}-resume/checkpoints/last.ckpt")  # not a local dir
    assert load_checkpoint(f"{url}/last.ckpt")["global_step"] == 2 * 19


def test_a_resumed_run_restores_the_best_weights_from_best_ckpt(make_cfg, tmp_path):
    # From epoch 2 on the learning rate is negative: gradient ascent, every epoch worse than
    # epoch 1, whose weights are kept. The resumed process never saw epoch 1 in memory.
    ascent = [
        "optimizer=torch_sgd",
        "optimizer.lr=0.1",
        "logger=none",
        "model.scheduler={_target_:torch.optim.lr_scheduler.MultiStepLR,_partial_:true,"
        "milestones:[2],gamma:-1.0}",
    ]
    run(make_cfg(*ascent, "trainer.max_epochs=3"))
    metrics = run(make_cfg(*ascent, "trainer.max_epochs=4", "ckpt_path=last"))
    assert metrics["best_epoch"] == 1 and metrics["epochs"] == 4
    assert metrics["val/loss"] < metrics["last/val/loss"]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert best["epoch"] == 1
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    for key, value in kept.items():
        assert torch.equal(best["state_dict"][f"net.{key}"], value), key


def test_a_resume_follows_the_configs_early_stopping_patience(make_cfg):
    # Gradient ascent from epoch 2 on (as above): every later epoch is worse. With the first
    # run's patience (2) restored from the checkpoint, the resumed run would stop early at
    # epoch 3 (its last); the resume's own patience=10 lets it complete. (Later epochs diverge.)
    ascent = [
        "optimizer=torch_sgd",
        "optimizer.lr=0.1",
        "logger=none",
        "model.scheduler={_target_:torch.optim.lr_scheduler.MultiStepLR,_partial_:true,"
        "milestones:[2],gamma:-1.0}",
    ]
    first = run(make_cfg(*ascent, "trainer.max_epochs=3", "callbacks.early_stopping.patience=2"))
    assert first["status"] == "completed" and first["best_epoch"] == 1
    resumed = run(
        make_cfg(
            *ascent,
            "trainer.max_epochs=4",
            "callbacks.early_stopping.patience=10",
            "ckpt_path=last",
        )
    )
    assert resumed["status"] == "completed" and resumed["epochs"] == 4, resumed
    assert resumed["best_epoch"] == 1
