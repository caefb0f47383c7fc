"""Evaluation and loading: eval.py, TaskModule.load_from_checkpoint(path), api.load, predict_step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab import api
from descentlab.data import DigitsDataModule
from descentlab.models.backbone import Backbone
from descentlab.models.module import TaskModule
from descentlab.run.train import run
from helpers.cli import one_error_line, read_metrics, run_cli

QUICK = ["callbacks.progress_bar=null", "logger=none"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run through train.py: three epochs of the default MLP on digits."""
    run_dir = tmp_path_factory.mktemp("trained")
    run_cli([*QUICK, "trainer.max_epochs=3", f"hydra.run.dir={run_dir}"])
    return run_dir


def digits_test_split():
    data = DigitsDataModule(seed=12345)
    data.setup("test")
    return data.splits["test"]


def test_load_from_checkpoint_needs_no_other_argument(trained):
    path = trained / "checkpoints" / "best.ckpt"
    module = TaskModule.load_from_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert module.state_dict().keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(module.state_dict()[key], value), key
    assert module.optimizer_factory is not None  # the run's optimizer, ready to train on
    assert type(module.configure_optimizers()).__name__ == "Adam"


def test_api_load_gives_the_kept_model_and_predict_reproduces_its_test_accuracy(trained):
    module = api.load(trained)
    kept = torch.load(trained / "model.pt", weights_only=True)
    for key, value in kept.items():
        assert torch.equal(module.net.state_dict()[key], value), key
    x, y = digits_test_split()
    probabilities = api.predict(module, x)
    assert probabilities.shape == (len(y), 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(len(y)), atol=1e-5)
    accuracy = (probabilities.argmax(dim=1) == y).float().mean().item()
    assert accuracy == pytest.approx(read_metrics(trained)["test/acc"], abs=1e-6)


def test_predict_casts_numpys_float64_and_refuses_what_is_not_a_real_number(trained):
    """Found by a hostile pass: a float64 numpy array (numpy's default) was a 23-frame dtype
    error; it is cast to the module's float32, and a complex or bool input is one line."""
    from descentlab.errors import DataError

    module = api.load(trained)
    x, _ = digits_test_split()
    expected = api.predict(module, x[:20])
    assert torch.equal(api.predict(module, x[:20].double().numpy()), expected)
    assert torch.equal(api.predict(module, x[:20].double()), expected)
    for bad in (x[:2].to(torch.complex64), x[:2] > 0.5):
        with pytest.raises(DataError, match=f"dtype {bad.dtype}"):
            api.predict(module, bad)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["model.pt", "checkpoints/best.ckpt", "."])
def test_eval_py_tests_a_checkpoint_a_model_pt_or_a_run_dir(trained, tmp_path, source):
    out = tmp_path / "eval"
    proc = run_cli(
        [*QUICK, f"ckpt_path={trained / source}", f"hydra.run.dir={out}"], script_name="eval.py"
    )
    console = proc.stdout + proc.stderr  # as train.py's: no advertisement, each line once
    assert "Tip:" not in console and console.count("GPU available") == 1, console[-2000:]
    metrics, training = read_metrics(out), read_metrics(trained)
    assert metrics["status"] == "completed" and metrics["ckpt_path"] == str(trained / source)
    # early stopping kept the best epoch, which best.ckpt also holds: the same test numbers
    for key in ("test/loss", "test/acc"):
        assert metrics[key] == pytest.approx(training[key], abs=1e-6), key


@pytest.mark.slow
def test_eval_py_on_other_data_and_its_errors(trained, tmp_path):
    out = tmp_path / "other"
    run_cli(
        [*QUICK, f"ckpt_path={trained}", "data.test_fraction=0.5", f"hydra.run.dir={out}"],
        script_name="eval.py",
    )
    assert read_metrics(out)["test/acc"] != read_metrics(trained)["test/acc"]  # another test split
    error = one_error_line(
        run_cli(
            [
                *QUICK,
                f"ckpt_path={trained}",
                "data.classes=[0,1]",
                f"hydra.run.dir={tmp_path / 'a'}",
            ],
            script_name="eval.py",
            check=False,
        )
    )
    assert "data=" in error and "10 classes" in error
    error = one_error_line(
        run_cli(
            [*QUICK, f"ckpt_path={tmp_path / 'nothing.ckpt'}", f"hydra.run.dir={tmp_path / 'b'}"],
            script_name="eval.py",
            check=False,
        )
    )
    assert "ckpt_path=" in error and "run dir" in error
    # the model's 10 classes, but 5 features for its 8x8 inputs: was a matmul traceback
    np.savez(tmp_path / "five.npz", x=np.zeros((100, 5), np.float32), y=np.arange(100) % 10)
    error = one_error_line(
        run_cli(
            [
                *QUICK,
                f"ckpt_path={trained}",
                "data=arrays",
                f"data.path={tmp_path / 'five.npz'}",
                f"hydra.run.dir={tmp_path / 'c'}",
            ],
            script_name="eval.py",
            check=False,
        )
    )
    assert "inputs of shape [5]" in error and "the model's input shape [1, 8, 8]" in error, error
    assert not any((tmp_path / d).exists() for d in "abc")


def test_an_optable_model_loads_with_its_op_table_loss(make_cfg, tmp_path):
    run(make_cfg(*QUICK, "model.net.ops=optable", "debug=limit", "trainer.max_epochs=1"))
    module = api.load(tmp_path)
    assert module.net.ops == "optable" and module.loss_fn == module.task.op_loss
    x, _ = digits_test_split()
    kept = TaskModule.load_from_checkpoint(tmp_path / "checkpoints" / "best.ckpt").eval()
    assert torch.equal(api.predict(module, x[:50]), api.predict(kept, x[:50]))


@pytest.mark.slow
def test_a_backbone_loads_without_its_initial_weights_file(make_cfg, tmp_path):
    start = tmp_path / "start.pt"
    torch.save(Backbone("mobilenet_v3_small", 10, (1, 8, 8)).state_dict(), start)
    run(
        make_cfg(
            *QUICK,
            "model=backbone",
            "model.net.name=mobilenet_v3_small",
            f"model.net.checkpoint={start}",
            "debug=limit",
            "trainer.max_epochs=1",
            "data.batch_size=16",
            "test=false",
        )
    )
    start.unlink()  # a loaded model gets its weights from the checkpoint, not from here
    module = TaskModule.load_from_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    assert isinstance(module.net, Backbone)
    for key, value in kept.items():
        assert torch.equal(module.net.state_dict()[key], value), key
