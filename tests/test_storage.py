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
