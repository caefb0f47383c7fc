"""``python predict.py ckpt_path=RUN input=PATH``: one row per input, through the real CLI."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from descentlab import api
from helpers.cli import one_error_line, read_metrics, run_cli
from helpers.fake_files import write_image_folder

QUIET = ["callbacks.progress_bar=null", "logger=none"]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def predict(args, tmp_path, name="pred", check=True):
    return run_cli(
        [*args, f"hydra.run.dir={tmp_path / name}"], script_name="predict.py", check=check
    )


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A model trained on an image folder of three classes named by words."""
    base = tmp_path_factory.mktemp("images")
    root = write_image_folder(base / "train", per_class=12, size=16, classes=[0, 1, 7])
    for digit, word in (("0", "zero"), ("1", "one"), ("7", "seven")):
        (root / digit).rename(root / word)
    run_cli(
        [
            "data=image_folder",
            f"data.root={root}",
            "data.image_size=16",
            "data.num_workers=0",
            "trainer.max_epochs=2",
            *QUIET,
            f"hydra.run.dir={base / 'run'}",
        ]
    )
    return base


@pytest.mark.slow
def test_a_flat_folder_of_new_images_gets_one_row_each_named_by_the_training_classes(
    image_run, tmp_path
):
    flat = tmp_path / "flat"
    flat.mkdir()
    source = write_image_folder(tmp_path / "new", per_class=3, size=16, classes=[0, 1, 7], seed=5)
    for i, path in enumerate(sorted(source.rglob("*.png"))):
        shutil.copy(path, flat / f"img_{i:02d}.png")  # no class folders: unlabelled
    predict(
        [
            f"ckpt_path={image_run / 'run'}",
            f"input={flat}",
            "data=image_folder",
            f"data.root={image_run / 'train'}",
        ],
        tmp_path,
    )
    rows = read_csv(tmp_path / "pred" / "predictions.csv")
    files = sorted(flat.glob("*.png"))
    assert [r["id"] for r in rows] == [str(f) for f in files]
    assert set(rows[0]) == {"id", "predicted", "p_one", "p_seven", "p_zero"}
    # the same images, preprocessed independently (resize 18 = 16·8/7, centre crop 16,
    # ImageNet statistics), through api.predict
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(18, antialias=True),
            v2.CenterCrop(16),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    probabilities = api.predict(api.load(image_run / "run"), x)
    names = ["one", "seven", "zero"]  # ImageFolder's sorted class folders
    assert [r["predicted"] for r in rows] == [names[int(i)] for i in probabilities.argmax(1)]
    ours = torch.tensor([[float(r[f"p_{n}"]) for n in names] for r in rows])
    assert torch.allclose(ours, probabilities.double().float(), atol=1e-5)
    summary = read_metrics(tmp_path / "pred")
    assert summary["rows"] == len(files)
    assert summary["run_card"] == str(image_run / "run" / "run.json")  # where the model came from


def test_regression_values_of_an_array_file_equal_api_predict(tmp_path):
    run_cli(
        [
            "task=regression",
            "data=teacher",
            "data.samples=200",
            "trainer.max_epochs=2",
            *QUIET,
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    x = np.random.default_rng(0).standard_normal((13, 10)).astype(np.float64)
    np.savez(tmp_path / "new.npz", x=x)  # no y: new data
    predict(
        [f"ckpt_path={tmp_path / 'run'}", f"input={tmp_path / 'new.npz'}", "output_format=jsonl"],
        tmp_path,
    )
    lines = (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [str(i) for i in range(13)]
    expected = api.predict(api.load(tmp_path / "run"), x)
    assert torch.allclose(torch.tensor([r["value"] for r in records]).float(), expected, atol=1e-6)
    # found by a hostile pass: no input read the default data (digits) and was refused for
    # its shape; it is the training run's test split, as the same data named outright gives
    predict([f"ckpt_path={tmp_path / 'run'}"], tmp_path, "split")
    data = ["task=regression", "data=teacher", "data.samples=200"]
    predict([f"ckpt_path={tmp_path / 'run'}", *data], tmp_path, "named")
    split = (tmp_path / "split" / "predictions.csv").read_text()
    assert split == (tmp_path / "named" / "predictions.csv").read_text()
    assert 0 < len(split.splitlines()) - 1 < 200
    # rows of NaN get a one-line refusal, not a class or a value each
    x[3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    proc = predict(
        [f"ckpt_path={tmp_path / 'run'}", f"input={tmp_path / 'nan.npz'}"],
        tmp_path,
        "nan",
        check=False,
    )
    assert "1 of 13 rows of x hold NaN or infinite values (the first: row 3)" in one_error_line(
        proc
    )


def test_the_test_split_by_default_with_digit_names(tmp_path):
    run_cli(["trainer.max_epochs=1", "debug=limit", *QUIET, f"hydra.run.dir={tmp_path / 'run'}"])
    predict([f"ckpt_path={tmp_path / 'run'}"], tmp_path)
    rows = read_csv(tmp_path / "pred" / "predictions.csv")
    assert len(rows) == 359 and {r["predicted"] for r in rows} <= {str(d) for d in range(10)}


def test_inputs_that_do_not_fit_are_one_line(tmp_path):
    run_cli(["trainer.max_epochs=1", "debug=limit", *QUIET, f"hydra.run.dir={tmp_path / 'run'}"])
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 65)))
    np.savez(tmp_path / "none.npz", x=np.zeros((0, 1, 8, 8)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "a.png")
    cases = {
        "wide.npz": "inputs of shape [65], the model takes [1, 8, 8]",
        "imgs": "a folder of images needs a model trained on data=image_folder",
        "nowhere": "input='",
        "none.npz": "x has no rows (shape (0, 1, 8, 8)): nothing to predict",
    }
    for i, (name, words) in enumerate(cases.items()):
        proc = predict(
            [f"ckpt_path={tmp_path / 'run'}", f"input={tmp_path / name}"],
            tmp_path,
            f"p{i}",
            check=False,
        )
        assert words in one_error_line(proc)


@pytest.mark.slow
def test_an_unreadable_file_is_one_line_or_skipped_with_a_count(image_run, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, path in enumerate(sorted((image_run / "train").rglob("*.png"))[:3]):
        shutil.copy(path, flat / f"{i}.png")
    (flat / "junk.png").write_bytes(b"not an image")
    run = [f"ckpt_path={image_run / 'run'}", f"input={flat}"]
    line = one_error_line(predict(run, tmp_path, "stop", check=False))
    assert "junk.png: not a readable image" in line and "on_bad_image=skip" in line
    proc = predict([*run, "on_bad_image=skip"], tmp_path, "skip")
    assert "skipped 1 unreadable image file(s) of 4" in proc.stderr
    assert len(read_csv(tmp_path / "skip" / "predictions.csv")) == 3


@pytest.mark.slow
def test_two_processes_write_the_one_process_rows_in_input_order(tmp_path):
    run_cli(["trainer.max_epochs=1", "debug=limit", *QUIET, f"hydra.run.dir={tmp_path / 'run'}"])
    # 13 rows in batches of 4 over 2 ranks: rank 1 gets 6 inputs and one of padding
    x = np.random.default_rng(0).random((13, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "new.npz", x=x)
    common = [f"ckpt_path={tmp_path / 'run'}", f"input={tmp_path / 'new.npz'}"]
    common += ["data.eval_batch_size=4"]
    predict(common, tmp_path, name="one")
    # no hydra.run.dir: both ranks must find the same predictions dir by themselves
    run_cli(
        [*common, "trainer=ddp_cpu", f"paths.log_dir={tmp_path / 'logs'}"],
        script_name="predict.py",
    )
    (two,) = (tmp_path / "logs" / "predictions").iterdir()
    one_rows, two_rows = (
        read_csv(tmp_path / "one" / "predictions.csv"),
        read_csv(two / "predictions.csv"),
    )
    assert [r["id"] for r in two_rows] == [str(i) for i in range(13)]
    assert [r["predicted"] for r in two_rows] == [r["predicted"] for r in one_rows]
    for a, b in zip(one_rows, two_rows, strict=True):
        assert [float(a[k]) for k in a if k not in ("id", "predicted")] == pytest.approx(
            [float(b[k]) for k in b if k not in ("id", "predicted")], abs=1e-6
        )
    summary = read_metrics(two)
    assert summary["rows"] == 13 and summary["processes"] == 2
    # one input over 2 processes stopped Lightning's sampler: never more processes than inputs
    np.savez(tmp_path / "one.npz", x=x[:1])
    predict([*common[:1], f"input={tmp_path / 'one.npz'}", "trainer=ddp_cpu"], tmp_path, "single")
    assert read_metrics(tmp_path / "single")["processes"] == 1
    assert (
        read_csv(tmp_path / "single" / "predictions.csv")[0]["predicted"]
        == two_rows[0]["predicted"]
    )
    assert sorted(p.name for p in two.iterdir() if "predictions" in p.name) == [
        "predictions.csv"
    ]  # the ranks' parts merged and removed
