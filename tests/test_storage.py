"""What a run writes and reads back: atomic files, the rebuild of a recorded model, the
one-line refusals of a file that cannot be loaded."""

from __future__ import annotations

import json

import pytest
import torch

from descentlab.errors import CheckpointError
from descentlab.models.rebuild import build_net, model_config
from descentlab.storage.atomic import write_json
from descentlab.storage.loading import load
from helpers.cli import dead_pid


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        write_json(path, {"a": Unserializable()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_rebuilt_net_does_not_read_its_initial_weights_again():
    rebuilt = build_net(
        {"_target_": "builtins.dict", "weights": "IMAGENET1K_V1", "checkpoint": "a.pt", "width": 3}
    )
    assert rebuilt == {"weights": None, "checkpoint": None, "width": 3}


def test_a_checkpoint_without_its_model_config_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not record the model config"):
        model_config({"state_dict": {}}, tmp_path / "x.ckpt")


def test_a_model_pt_alone_without_a_model_config_is_one_line(tmp_path):
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="network weights only"):
        load(tmp_path / "model.pt")


def test_a_dead_writers_temporary_file_is_removed_at_the_next_save(tmp_path):
    """kill -9 during a checkpoint save leaves .last.ckpt.tmp-PID, as large as a checkpoint:
    the next save of that file (a resumed run) removes it; a live writer's is left alone."""
    import os

    from descentlab.storage.checkpoints import SafeCheckpointIO

    target = tmp_path / "checkpoints" / "last.ckpt"
    target.parent.mkdir()
    stale = target.with_name(f".last.ckpt.tmp-{dead_pid()}")
    stale.write_bytes(b"half a checkpoint")
    live = target.with_name(f".last.ckpt.tmp-{os.getppid()}")  # our parent: running
    live.write_bytes(b"being written")
    other = target.with_name(f".best.ckpt.tmp-{dead_pid()}")  # another file's: not this save's
    other.write_bytes(b"x")
    SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, target)
    assert target.is_file() and not stale.exists()
    assert live.exists() and other.exists()
    write_json(tmp_path / "checkpoints" / "best.ckpt", {})  # write_atomically does the same
    assert not other.exists()
