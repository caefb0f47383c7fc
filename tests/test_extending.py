"""The README's "Extending the template", followed once as a user would: a copy of the
template, one new file per extension (a dataset, a model, an optimizer, a callback, a loss
term already shipped, an experiment tying them together), run through the real CLI."""

from __future__ import annotations

import os
import shutil

import pytest

from helpers.cli import ROOT, read_metrics, run_cli

MY_CODE = '''
import torch
from torch import nn
from lightning.pytorch import Callback

from descentlab.data.tensor_data import TensorDataModule


class Blobs(TensorDataModule):
    """Two Gaussian blobs in 2-D: a dataset in a dozen lines."""

    def load_splits(self):
        g = torch.Generator().manual_seed(self.seed)
        y = torch.randint(0, 2, (600,), generator=g)
        x = torch.randn(600, 2, generator=g) + 3.0 * y[:, None]
        return {"train": (x[:400], y[:400]), "val": (x[400:500], y[400:500]), "test": (x[500:], y[500:])}


class TinyNet(nn.Sequential):
    def __init__(self, input_shape, num_classes, width=8):
        super().__init__(nn.Flatten(), nn.Linear(input_shape[0], width), nn.Tanh(),
                         nn.Linear(width, num_classes))
        self.num_classes = num_classes


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
trainer:
  max_epochs: 4
""",
}


@pytest.mark.slow
def test_the_readmes_extensions_work_as_written(tmp_path):
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
    run_dir = tmp_path / "run"
    pythonpath = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
    run_cli(
        ["+experiment=my_idea", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"],
        cwd=checkout,
        env={"PYTHONPATH": pythonpath},
        script=checkout / "train.py",
    )
    metrics = read_metrics(run_dir)
    assert metrics["status"] in ("completed", "early_stopped")
    assert metrics["test/acc"] > 0.9  # two well-separated blobs
    assert metrics["train/penalty"] > 0  # the L1 term was added
    assert (run_dir / "epochs.txt").read_text() == "4"  # the callback ran every epoch
