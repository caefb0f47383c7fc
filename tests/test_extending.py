"""The README's "Extending the template", followed once as a user would: a copy of the
template, one new file per extension (a dataset, a model, an optimizer, a callback, a task,
a loss term already shipped, an experiment tying them together), run through the real CLI."""

from __future__ import annotations

import os
import shutil

import pytest

from helpers.cli import ROOT, one_error_line, read_metrics, run_cli

MY_CODE = '''
import torch
from torch import nn
from lightning.pytorch import Callback

from typing import Annotated

from descentlab.data.tensor_data import TensorDataModule
from descentlab.models.penalties import WeightPenalty
from descentlab.rules import POSITIVE, UNIT_INTERVAL, checked
from descentlab.tasks import Classification


class Blobs(TensorDataModule):
    """Two Gaussian blobs in 2-D: a dataset in a dozen lines."""

    def load_splits(self):
        g = torch.Generator().manual_seed(self.seed)
        y = torch.randint(0, 2, (600,), generator=g)
        x = torch.randn(600, 2, generator=g) + 3.0 * y[:, None]
        return {"train": (x[:400], y[:400]), "val": (x[400:500], y[400:500]), "test": (x[500:], y[500:])}


class TinyNet(nn.Sequential):
    def __init__(self, input_shape, num_classes, width: int = 8):
        super().__init__(nn.Flatten(), nn.Linear(input_shape[0], width), nn.Tanh(),
                         nn.Linear(width, num_classes))
        self.num_classes = num_classes


class Hoyer(WeightPenalty):
    """λ · Σ_W ‖W‖₁ / ‖W‖₂: a loss term of one's own, with a declared range."""

    @checked
    def __init__(self, strength: Annotated[float, POSITIVE] = 1e-3):
        super().__init__(strength)

    def of(self, weight):
        return weight.abs().sum() / weight.norm()


class Smoothed(Classification):
    """Cross-entropy against labels smoothed by ε: a task of one's own, with a declared range."""

    @checked
    def __init__(self, smoothing: Annotated[float, UNIT_INTERVAL] = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.smoothing = smoothing

    def loss(self, output, target):
        return torch.nn.functional.cross_entropy(output, target, label_smoothing=self.smoothing)


class CountEpochs(Callback):
    def __init__(self, path):
        self.path, self.epochs = path, 0

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs += 1
        open(self.path, "w").write(str(self.epochs))
'''

FILES = {
    "configs/data/blobs.yaml": """_target_: my_code.Blobs
batch_size: 32
num_classes: 2
dims: [2]
seed: ${seed}
""",
    "configs/model/tiny.yaml": None,  # copied from mlp.yaml, net replaced (below)
    "configs/optimizer/my_sgd.yaml": """_target_: torch.optim.SGD
_partial_: true
lr: 0.5
""",
    "configs/task/smoothed.yaml": """_target_: my_code.Smoothed
smoothing: 0.2
outputs: ${data.num_classes}
monitor: val/acc
mode: max
""",
    "configs/callbacks/count.yaml": """count_epochs:
  _target_: my_code.CountEpochs
  path: ${paths.output_dir}/epochs.txt
""",
    "configs/experiment/my_idea.yaml": """# @package _global_
defaults:
  - override /data: blobs
  - override /model: tiny
  - override /optimizer: my_sgd
  - override /regularizer: l1
  - override /callbacks: [default, count]
  - override /task: smoothed
trainer:
  max_epochs: 4
""",
}


def make_checkout(tmp_path):
    """A copy of the template with the README's extensions added; returns (dir, env)."""
    checkout = tmp_path / "my_project"
    shutil.copytree(ROOT / "configs", checkout / "configs")
    shutil.copy(ROOT / "train.py", checkout / "train.py")
    (checkout / "my_code.py").write_text(MY_CODE)
    for name, content in FILES.items():
        if (
            content is None
        ):  # "copied from configs/model/mlp.yaml with net._target_ pointing at your class"
            mlp = (ROOT / "configs" / "model" / "mlp.yaml").read_text()
            net = mlp.split("net:\n", 1)[1].split("\noptimizer:", 1)[0]
            content = mlp.replace(
                net,
                "  _target_: my_code.TinyNet\n  input_shape: ${data.dims}\n"
                "  num_classes: ${data.num_classes}",
            )
        (checkout / name).write_text(content)
    pythonpath = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
    return checkout, {"PYTHONPATH": pythonpath}


@pytest.mark.slow
def test_the_readmes_extensions_work_as_written(tmp_path):
    checkout, env = make_checkout(tmp_path)
    run_dir = tmp_path / "run"
    run_cli(
        ["+experiment=my_idea", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"],
        cwd=checkout,
        env=env,
        script=checkout / "train.py",
    )
    metrics = read_metrics(run_dir)
    assert metrics["status"] in ("completed", "early_stopped")
    assert metrics["test/acc"] > 0.9  # two well-separated blobs
    assert metrics["train/penalty"] > 0  # the L1 term was added
    assert (run_dir / "epochs.txt").read_text() == "4"  # the callback ran every epoch
    # the task's loss: smoothed labels keep the loss above the smoothing's floor, and the
    # task's monitor chose the kept epoch (early stopping and best.ckpt on val/acc, max)
    assert metrics["task"] == "classification" and metrics["monitor"] == "val/acc"
    assert metrics["train/loss"] > 0.2


@pytest.mark.parametrize(
    "override, expected",
    [
        # a plain type hint of the user's net: `width: int`
        ("+model.net.width=abc", "model.net.width='abc' is invalid: an integer"),
        # a range the user's task declares
        ("task.smoothing=1.5", "task.smoothing=1.5 is invalid: a number in [0, 1)"),
        # a range the user's loss term declares, on the key the user named it
        (
            "+model.penalties.hoyer={_target_:my_code.Hoyer,strength:-1}",
            "model.penalties.hoyer.strength=-1 is invalid: a positive number (at most 3.4e38, "
            "float32's largest)",
        ),
        # a rule of the template's own, on a user's key (it once said model.penalties.l1)
        (
            "+model.penalties.sparse={_target_:descentlab.models.penalties.L1Penalty,strength:-2}",
            "model.penalties.sparse.strength=-2 is invalid: a number >= 0 (at most 3.4e38, "
            "float32's largest)",
        ),
    ],
)
def test_a_users_own_class_gets_one_line_errors_for_bad_values(tmp_path, override, expected):
    checkout, env = make_checkout(tmp_path)
    proc = run_cli(
        ["+experiment=my_idea", override, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=checkout,
        env=env,
        script=checkout / "train.py",
        check=False,
    )
    assert one_error_line(proc) == f"descentlab: error: {expected}"
