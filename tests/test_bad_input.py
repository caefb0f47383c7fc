"""Every bad input a hostile user tried: one line naming the key, the value and what is
allowed (or the file and what is wrong), exit 1, and nothing written — through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from helpers.cli import ROOT, one_error_line, run_cli
from helpers.fake_files import MNIST_FILES, write_idx, write_mnist_like

# (overrides, words the one-line message must contain)
BAD_VALUES = [
    (["data.val_fraction=1.5"], ["data.val_fraction=1.5", "(0, 1)"]),
    (["data.val_fraction=0"], ["data.val_fraction=0", "(0, 1)"]),
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], ["data.val_fraction=0.5", "< 1"]),
    (["data=mnist", "data.val_size=-5"], ["data.val_size=-5", "positive integer"]),
    (["data.classes=[0]"], ["data.classes=[0]", "at least 2"]),
    (
        ["float32_matmul_precision=bogus"],
        ["float32_matmul_precision='bogus'", "highest, high, medium"],
    ),
    (
        ["trainer.accelerator=cpu", "trainer.devices=99"],
        ["trainer.devices=99", f"at most {os.cpu_count()}"],
    ),
    (["trainer.devices=abc"], ["trainer.devices='abc'", "positive integer"]),
    (["seed=-1"], ["seed=-1", "integer in 0.."]),
    (["seed=abc"], ["seed='abc'", "integer in 0.."]),
    (["model.net.hidden_dims=5"], ["model.net.hidden_dims=5", "list of positive integers"]),
    (["optimizer.weight_decay=abc"], ["optimizer.weight_decay='abc'", ">= 0"]),
    (["optimizer.lr=abc"], ["optimizer.lr='abc'", "positive number"]),
    (["optimizer.lr=inf"], ["optimizer.lr=inf", "positive number"]),
    (["optimizer.lr=nan"], ["optimizer.lr=nan", "positive number"]),
    # found by a hostile pass: an overflow inside Adam's step, as a traceback
    (["optimizer.lr=1e300"], ["optimizer.lr=1e+300", "float32's largest"]),
    (["logger=null"], ["logger=null: a config group takes an option name", "logger=none"]),
    (["optimizer=momentum", "optimizer.mu=abc"], ["optimizer.mu='abc'", "[0, 1)"]),
    (["optimizer.eps=-1"], ["optimizer.eps=-1", ">= 0"]),
    (["data.label_noise=1.5"], ["data.label_noise=1.5", "[0, 1]"]),
    (["model.net.dropout_form=notes"], ["model.net.dropout_form='notes'", "lecture"]),
    (["optimizer.betas=0.9"], ["optimizer.betas=0.9", "two numbers"]),
    (["model.net.dropout=abc"], ["model.net.dropout='abc'", "[0, 1)"]),
    (["data.train_fraction=abc"], ["data.train_fraction='abc'", "(0, 1]"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs='abc'", "positive integer"]),
    (["flush_denormal=maybe"], ["flush_denormal='maybe'", "true or false"]),
    # torch's own "set_num_threads expects a positive integer" came from inside the run
    (["num_threads=0"], ["num_threads=0", "auto, null or 1.."]),
    (["num_threads=abc"], ["num_threads='abc'", "auto, null or 1.."]),
    (["num_threads=999"], ["num_threads=999", "on this machine"]),
    (["model.net.bias=maybe"], ["model.net.bias='maybe'", "true or false"]),
    (["optimizer=adaptive", "optimizer.scope=foo"], ["optimizer.scope='foo'", "global"]),
    (["optimizer=adam", "optimizer.form=bogus"], ["optimizer.form='bogus'", "lecture"]),
    (["model.l2_penalty=abc"], ["model.l2_penalty='abc'", ">= 0"]),
    (
        ["trainer.check_val_every_n_epoch=0"],
        ["trainer.check_val_every_n_epoch=0", "positive integer"],
    ),
    (["data.classes=5"], ["data.classes=5", "class ids"]),
    (["data.classes=[true,false]"], ["data.classes=[True, False]", "class ids"]),
    # values only the built object can judge: one line naming the config node
    (["trainer.precision=7"], ["trainer", "cannot be built", "precision"]),
    # checked against the monitor's direction before the callbacks are built
    (["callbacks.early_stopping.mode=up"], ["callbacks.early_stopping.mode='up'", "min"]),
    (["data.augment=foo"], ["data.augment='foo'", "null or a transform config"]),
    (["model.scheduler=foo"], ["model.scheduler='foo'", "null or a scheduler config"]),
    # a NaN initializer is blamed, not the learning rate
    (["init=constant", "init.value=inf"], ["init=", "finite weights"]),
    # a float parameter (Initializer's value: float) refuses nan by its type hint
    (["init=constant", "init.value=nan"], ["init.value=nan", "a number"]),
    # keys set through model.optimizer / model.init (references to the groups): Hydra's own
    # hint, "+model.optimizer.lr=...", fails too; the line names the key that works
    (["model.optimizer.lr=0.01"], ["set optimizer.lr=VALUE"]),
    (
        ["regularizer=l1", "model.penalties.l1.strength=-1"],
        ["model.penalties.l1.strength=-1", ">= 0"],
    ),
    (["+model.penalties.mine=3"], ["model.penalties.mine=3", "_target_"]),
    (["model.penalties=5"], ["model.penalties=5", "mapping"]),
    (
        ["model=backbone", "model.backbone_lr_ratio=-2"],
        ["model.backbone_lr_ratio=-2", "positive number"],
    ),
    (
        ["model=backbone", "model.backbone_lr_ratio=abc"],
        ["model.backbone_lr_ratio='abc'", "positive number"],
    ),
    (["model=backbone", "model.probe_epochs=-1"], ["model.probe_epochs=-1", ">= 0"]),
    (
        ["callbacks.progress_bar.refresh_per_second=abc"],
        ["refresh_per_second='abc'", "positive number"],
    ),
    (["+model.optimizer.lr=0.01"], ["set optimizer.lr=VALUE"]),
    (["callbacks.progress_bar.refresh_per_second=0"], ["refresh_per_second", "positive number"]),
    # a ??? value that another key's interpolation reads (OmegaConf's own message was terse)
    (["+experiment=finetune_backbone"], ["pretrained='???'", "set it on the command line)"]),
    # found by a hostile pass: tracebacks, or accepted and run wrongly
    (["optimizer.lr=null"], ["optimizer.lr=None", "null is not one"]),
    (["optimizer=torch_sgd", "optimizer.momentum=null"], ["optimizer.momentum=None", "a number"]),
    (["ckpt_path=bogus://x/last.ckpt"], ["ckpt_path='bogus://x/last.ckpt'", "a readable URL"]),
    # data=image_folder: -1 was a DataLoader traceback leaving a run dir; 0 was read as "unset"
    (
        ["data=image_folder", "data.root=/no/such/folder", "data.num_workers=-1"],
        ["data.num_workers=-1", "an integer >= 0"],
    ),
    (
        ["data=image_folder", "data.root=/no/such/folder", "data.image_size=0"],
        ["data.image_size=0", "a positive integer (pixels)"],
    ),
    # ckpt_path=$CKPT with CKPT unset: was read as "no checkpoint" and trained a new run
    (["ckpt_path="], ["ckpt_path=''", "it is empty: an unset shell variable?"]),
    (["model=backbone", "model.net.freeze=maybe"], ["model.net.freeze='maybe'", "true or false"]),
    (
        ["+experiment=finetune_backbone", "pretrained=null", "model.scheduler.T_max=0"],
        ["model.scheduler.T_max=0", "positive integer"],
    ),
    (
        ["model=backbone", "model.net.freeze=true", "callbacks=[default,finetune]"],
        ["model.net.freeze=True", "unfreezes the backbone"],
    ),
    (
        [
            "model=backbone",
            "callbacks=[default,finetune]",
            "callbacks.backbone_finetuning.unfreeze_backbone_at_epoch=-1",
        ],
        ["unfreeze_backbone_at_epoch=-1", "integer >= 0"],
    ),
]


@pytest.mark.parametrize("overrides,words", BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_value_is_one_line_and_writes_nothing(tmp_path, overrides, words):
    run_dir = tmp_path / "run"
    proc = run_cli([*overrides, f"hydra.run.dir={run_dir}"], check=False, timeout=120)
    error = one_error_line(proc)
    for word in words:
        assert word in error, error
    assert "optimizer.lr" not in error or "optimizer.lr" in " ".join(overrides)
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())  # nothing written


@pytest.mark.parametrize("override", ["optimizer.lr=-1", "ckpt_path=/no/such/last.ckpt"])
@pytest.mark.smoke
def test_a_value_refused_at_validation_exits_before_torch_is_imported(tmp_path, override):
    # why refusals take ~1 s, not the ~7 s of importing torch and Lightning: the checks and
    # everything they import are torch-free (python -X importtime lists each import made)
    proc = run_cli(
        [override, f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "omegaconf" in imported  # the import list was recorded
    assert "torch" not in imported and "lightning" not in imported
    proc.stderr = "\n".join(
        line for line in proc.stderr.splitlines() if not line.startswith("import time:")
    )
    assert override.split("=")[0] in one_error_line(proc)


@pytest.mark.smoke
def test_run_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("keep me\n")
    error = one_error_line(run_cli([f"hydra.run.dir={target}"], check=False))
    assert str(target) in error and "existing file" in error
    assert target.read_text() == "keep me\n"


# ------------------------------------------------------------------------ dataset files
def test_mnist_files_with_a_wrong_magic_number_are_one_line(tmp_path):
    raw = write_mnist_like(tmp_path / "data", n_train=200, n_test=50)
    images = raw / MNIST_FILES[True][0]
    content = bytearray(images.read_bytes())
    content[0:4] = b"\x00\x00\x77\x77"  # not an idx magic number
    images.write_bytes(bytes(content))
    proc = run_cli(
        ["data=mnist", f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
    )
    error = one_error_line(proc)
    assert "MNIST" in error and "format" in error and str(tmp_path / "data") in error
    assert not (tmp_path / "run").exists()


def test_mnist_labels_outside_the_classes_are_one_line(tmp_path):
    raw = write_mnist_like(tmp_path / "data", n_train=200, n_test=50)
    labels = np.full(200, 3, dtype=np.uint8)
    labels[17] = 12
    write_idx(raw / MNIST_FILES[True][1], labels)
    proc = run_cli(
        ["data=mnist", f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
    )
    error = one_error_line(proc)
    assert "label 12" in error and "0..9" in error


# ------------------------------------------------------------------------- checkpoints
def test_random_bytes_as_ckpt_path_are_a_corrupt_file_not_an_attack(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(bytes(range(256)) * 8)
    error = one_error_line(
        run_cli([f"ckpt_path={junk}", f"hydra.run.dir={tmp_path / 'run'}"], check=False)
    )
    assert "corrupt or truncated" in error and "arbitrary code" not in error


def test_a_model_pt_given_as_ckpt_path_is_one_line(tmp_path):
    model_pt = tmp_path / "model.pt"
    torch.save({"0.weight": torch.zeros(3, 3)}, model_pt)
    error = one_error_line(
        run_cli([f"ckpt_path={model_pt}", f"hydra.run.dir={tmp_path / 'run'}"], check=False)
    )
    assert "network weights only" in error and "last.ckpt" in error


# --------------------------------------------------------------------------- the report
@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""], ids=["corrupt", "a list", "empty"])
def test_report_on_an_unreadable_metrics_json_is_one_line(tmp_path, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(content)
    proc = run_cli([str(run)], module="descentlab.report", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [
        line for line in proc.stderr.splitlines() if line.startswith("descentlab.report: error:")
    ]
    assert len(lines) == 1 and str(run / "metrics.json") in lines[0]


def test_report_reads_the_nan_strings_train_py_writes(tmp_path):
    good = {
        "status": "completed",
        "val/acc": 0.9,
        "val/loss": 0.3,
        "train/loss": 0.2,
        "train/acc": 0.95,
        "test/loss": 0.3,
        "test/acc": 0.9,
    }
    nan = {**good, "val/acc": "nan", "val/loss": "nan"}
    for name, metrics in (("a", nan), ("b", good)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    proc = run_cli(
        [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")],
        module="descentlab.report",
        cwd=ROOT,
    )
    rows = [
        line for line in proc.stdout.splitlines() if line.startswith("| ") and "run" not in line
    ]
    assert rows[0].startswith("| b ") and "nan" in rows[1], proc.stdout  # NaN ranks last


# ------------------------------------------------------------------ full and read-only disks
@contextmanager
def tmpfs(path, options: str):
    """A small tmpfs mounted at ``path`` (needs root and CAP_SYS_ADMIN; the test skips without)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "size=300k") as disk:
        yield disk


@pytest.fixture
def read_only_disk(tmp_path):
    with tmpfs(tmp_path / "ro", "size=1m,ro") as disk:
        yield disk


def test_a_full_disk_is_one_line_naming_the_file(small_disk):
    run_dir = small_disk / "run"
    error = one_error_line(
        run_cli(["trainer.max_epochs=3", f"hydra.run.dir={run_dir}"], check=False)
    )
    assert "No space left on device" in error and str(run_dir / "checkpoints") in error
    assert not list((run_dir / "checkpoints").glob(".*tmp*"))  # no half-written file left
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_a_read_only_run_dir_is_one_line(read_only_disk):
    error = one_error_line(run_cli([f"hydra.run.dir={read_only_disk / 'run'}"], check=False))
    assert "Read-only file system" in error and str(read_only_disk / "run") in error
