"""Your own data: data=arrays (.npz/.pt in memory) and data=image_folder (image files
streamed through DataLoader workers), through the real CLI where a user would see it."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from torchvision import models

from descentlab.data import ArraysDataModule, ImageFolderDataModule
from helpers.cli import one_error_line, read_metrics, run_cli
from helpers.fake_files import write_image_folder

QUICK = ["logger=none", "callbacks.progress_bar=null"]
# small images and an MLP: seconds per run on 2 cores; hflip off (a flipped digit is no digit)
SMALL = ["data=image_folder", "data.image_size=16", "data.hflip=false", "data.num_workers=2"]


def blobs(n: int = 300, shape=(4, 3), classes: int = 3, seed: int = 0):
    """Features of shape ``shape`` around one centre per class: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(0, 3, size=(classes, *shape))
    x = centres[y] + rng.normal(0, 1, size=(n, *shape))
    return x.astype(np.float32), y


# -- data=arrays --------------------------------------------------------------------------
def test_arrays_npz_trains_and_tests_through_the_cli(tmp_path):
    x, y = blobs()
    np.savez(tmp_path / "data.npz", x=x, y=y)
    run_cli(
        [
            "data=arrays",
            f"data.path={tmp_path / 'data.npz'}",
            "trainer.max_epochs=5",
            f"hydra.run.dir={tmp_path / 'run'}",
            *QUICK,
        ]
    )
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "completed" and metrics["test/acc"] > 0.9, metrics


def test_arrays_pt_gives_the_same_seeded_splits_as_npz(tmp_path):
    x, y = blobs(n=100, shape=(2, 2, 2), classes=4)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "d.pt")
    a, b = (
        ArraysDataModule(str(tmp_path / f), seed=3, num_classes=4, dims=(2, 2, 2))
        for f in ("d.npz", "d.pt")
    )
    a.setup(), b.setup()
    sizes = {k: len(v[1]) for k, v in a.splits.items()}
    assert sizes == {"train": 65, "val": 15, "test": 20}
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split][0], b.splits[split][0])
        assert a.splits[split][0].shape[1:] == (2, 2, 2) and a.splits[split][1].dtype == torch.long


@pytest.mark.slow  # several CLI runs
def test_bad_array_files_are_one_line_naming_the_file(tmp_path):
    x, y = blobs(n=20)
    np.savez(tmp_path / "no_y.npz", x=x, labels=y)
    np.savez(tmp_path / "float_y.npz", x=x, y=y.astype(np.float32))
    np.savez(tmp_path / "short_y.npz", x=x, y=y[:10])
    (tmp_path / "data.csv").write_text("1,2,3\n")
    # found by a hostile pass: a NaN was a NaN loss at step 0 blamed on the learning rate, a
    # label of 10**9 a model of 10**9 outputs (out of memory), an empty file "the train split
    # is empty" without its name, a folder "does not exist"; each message was also wrapped in
    # "data: cannot be built from the config (InterpolationResolutionError: ...)"
    x_nan = x.copy()
    x_nan[7, 1] = np.nan
    np.savez(tmp_path / "nan_x.npz", x=x_nan, y=y)
    np.savez(tmp_path / "huge_y.npz", x=x, y=np.where(np.arange(20) == 3, 10**9, y))
    np.savez(tmp_path / "empty.npz", x=x[:0], y=y[:0])
    (tmp_path / "folder.npz").mkdir()
    cases = {
        "missing.npz": "does not exist",
        "data.csv": "a .npz file",
        "no_y.npz": "needs arrays named x and y",
        "float_y.npz": "task=classification needs class labels",
        "short_y.npz": "one row per target",
        "nan_x.npz": "x holds NaN or inf in 1 rows (the first: row 7)",
        "huge_y.npz": "the largest, 1000000000, makes more classes than the file has rows (20)",
        "empty.npz": "x and y hold no rows",
        "folder.npz": "is a folder, not a .npz file",
    }
    for name, words in cases.items():
        proc = run_cli(
            [
                "data=arrays",
                f"data.path={tmp_path / name}",
                *QUICK,
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
            check=False,
        )
        line = one_error_line(proc)
        assert words in line and name in line, line
        assert "cannot be built" not in line, line


# -- data=image_folder: the folder --------------------------------------------------------
def test_one_folder_is_split_by_seeded_fractions(tmp_path):
    write_image_folder(tmp_path, per_class=10, size=16)
    dm = ImageFolderDataModule(str(tmp_path), val_fraction=0.2, test_fraction=0.1, seed=1)
    dm.setup()
    paths = {s: {p for p, _ in dm.samples[s]} for s in ("train", "val", "test")}
    assert [len(paths[s]) for s in ("train", "val", "test")] == [70, 20, 10]
    assert not (paths["train"] & paths["val"]) and not (paths["train"] & paths["test"])
    assert dm.classes == [str(d) for d in range(10)] and dm.num_classes == 10
    again = ImageFolderDataModule(str(tmp_path), val_fraction=0.2, test_fraction=0.1, seed=1)
    again.setup()
    other = ImageFolderDataModule(str(tmp_path), val_fraction=0.2, test_fraction=0.1, seed=2)
    other.setup()
    assert again.samples == dm.samples and other.samples["val"] != dm.samples["val"]


def test_train_val_test_subfolders_are_used_as_they_are(tmp_path):
    write_image_folder(
        tmp_path, per_class=6, size=16, classes=[1, 2, 3], splits=("train", "val", "test")
    )
    dm = ImageFolderDataModule(str(tmp_path))
    dm.setup()
    for split in ("train", "val", "test"):
        assert all(Path(p).parts[-3] == split for p, _ in dm.samples[split])
        assert len(dm.samples[split]) == 6
    assert dm.classes == ["1", "2", "3"]


def test_batches_are_the_same_for_any_number_of_workers(tmp_path):
    """Augmentations are drawn from (seed, epoch, index), not from a worker's RNG."""
    write_image_folder(tmp_path, per_class=5, size=20, classes=[0, 1])  # 8 train, 1 val, 1 test
    batches = []
    for workers in (0, 2):
        dm = ImageFolderDataModule(str(tmp_path), batch_size=4, num_workers=workers, image_size=16)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(1)
        batches.append(list(loader))
    assert len(batches[0]) == len(batches[1]) == 2
    for (xa, ya), (xb, yb) in zip(*batches, strict=True):
        assert xa.shape == (4, 3, 16, 16) and torch.equal(xa, xb) and torch.equal(ya, yb)
    loader = dm.train_dataloader()  # another epoch: another order and draw
    loader.sampler.set_epoch(2)
    assert not torch.equal(torch.cat([x for x, _ in loader]), torch.cat([x for x, _ in batches[0]]))


def test_grayscale_files_become_rgb_and_loaders_default_to_the_cpus(tmp_path):
    write_image_folder(tmp_path, per_class=5, size=16, classes=[0, 1])
    Image.new("L", (16, 16), color=128).save(tmp_path / "0" / "gray.png")
    dm = ImageFolderDataModule(str(tmp_path), batch_size=64, image_size=16, num_workers=0)
    images = torch.cat(
        [x for x, _ in dm.train_dataloader()]
        + [x for x, _ in dm.val_dataloader()]
        + [x for x, _ in dm.test_dataloader()]
    )
    assert images.shape == (11, 3, 16, 16)
    default = ImageFolderDataModule(str(tmp_path))
    assert default.num_workers == max(1, min(8, os.cpu_count() or 1))
    assert default.pin_memory is False  # no trainer on CUDA
    loader = default.train_dataloader()
    assert loader.num_workers == default.num_workers and loader.persistent_workers


def test_pretrained_weights_bring_their_own_preprocessing(tmp_path, make_cfg):
    write_image_folder(tmp_path / "imgs", per_class=2, size=40, classes=[0, 1])
    root = f"data.root={tmp_path / 'imgs'}"
    cfg = make_cfg("data=image_folder", root, "model=backbone", "model.net.weights=DEFAULT")
    dm = instantiate(cfg.data)
    assert list(cfg.model.net.input_shape) == [3, 224, 224]
    preset = models.ResNet18_Weights.DEFAULT.transforms()
    image = Image.open(sorted((tmp_path / "imgs" / "0").iterdir())[0]).convert("RGB")
    dm.setup()
    ours = dm.test_dataloader().dataset.transform(image)
    assert torch.allclose(ours, preset(image), atol=1e-5)  # size, crop, mean, std: the weights'
    # the config overrides it
    cfg = make_cfg(
        "data=image_folder",
        root,
        "model=backbone",
        "model.net.weights=DEFAULT",
        "data.image_size=48",
        "data.mean=[0.5,0.5,0.5]",
    )
    dm = instantiate(cfg.data)
    assert list(cfg.data.dims) == [3, 48, 48] and dm.prep["mean"] == (0.5, 0.5, 0.5)
    assert dm.prep["std"] == tuple(preset.std)
    # no pretrained weights: 64 px, ImageNet statistics
    dm = instantiate(make_cfg("data=image_folder", root, "model=backbone").data)
    assert dm.dims == (3, 64, 64)


# -- data=image_folder: bad input -----------------------------------------------------------
def bad_trees(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each broken tree, and the path its error line must name."""
    cases = {}
    root = tmp_path / "empty_class"
    write_image_folder(root, per_class=3, size=16, classes=[0, 1])
    (root / "7").mkdir()
    cases["no image files"] = (root, str(root / "7"))
    root = tmp_path / "corrupt"
    write_image_folder(root, per_class=3, size=16, classes=[0, 1])
    (root / "1" / "bad.png").write_bytes(b"this is not a PNG file")
    cases["not a readable image"] = (root, str(root / "1" / "bad.png"))
    root = tmp_path / "missing_val_class"
    write_image_folder(root, per_class=4, size=16, classes=[0, 1, 2], splits=("train", "val"))
    for f in (root / "val" / "2").iterdir():
        f.unlink()
    (root / "val" / "2").rmdir()
    cases["no folder for class '2'"] = (root, str(root / "val"))
    root = tmp_path / "extra_val_class"
    write_image_folder(root, per_class=4, size=16, classes=[0, 1], splits=("train", "val"))
    write_image_folder(root / "val", per_class=1, size=16, classes=[5])
    cases["is not among the training classes"] = (root, str(root / "val" / "5"))
    cases["is not a folder"] = (tmp_path / "nope", str(tmp_path / "nope"))
    # found by a hostile pass: a link back to the root listed every image again and again
    # under class 0 (exit 0, ~40x the data, val/acc 0.98 on noise); two links to one folder
    # would give its images two labels
    root = tmp_path / "link_cycle"
    write_image_folder(root, per_class=3, size=16, classes=[0, 1])
    (root / "0" / "loop").symlink_to("..", target_is_directory=True)
    cases["images would be read twice"] = (root, str(root / "0" / "loop"))
    root = tmp_path / "shared_folder"
    write_image_folder(root, per_class=3, size=16, classes=[0, 1])
    (root / "1" / "also0").symlink_to(root / "0", target_is_directory=True)
    cases["also read as " + str(root / "0")] = (root, str(root / "1" / "also0"))
    return cases


@pytest.mark.slow  # several CLI runs
def test_bad_folders_are_one_line_naming_the_path(tmp_path):
    for words, (root, named) in bad_trees(tmp_path).items():
        proc = run_cli(
            [*SMALL, f"data.root={root}", *QUICK, f"hydra.run.dir={tmp_path / 'run'}"], check=False
        )
        line = one_error_line(proc)
        assert words in line and named in line, (words, line)
        assert not (tmp_path / "run" / "metrics.json").exists()


def truncated_jpeg_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A tree with one JPEG cut short: its header reads, decoding it fails (in a worker)."""
    root = tmp_path / "imgs"
    write_image_folder(root, per_class=6, size=16, classes=[0, 1], suffix=".jpg")
    bad = root / "0" / "3.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        bad
    )
    bad.write_bytes(bad.read_bytes()[:-1000])  # the header stays readable: only decoding fails
    return root, bad


def test_a_file_that_fails_to_decode_in_a_worker_is_one_line(tmp_path):
    root, bad = truncated_jpeg_tree(tmp_path)
    proc = run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.val_fraction=0.2",
            "data.test_fraction=0.2",
            "trainer.max_epochs=1",
            *QUICK,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    line = one_error_line(proc)
    assert str(bad) in line and "data.on_bad_image=skip" in line, line


def test_on_bad_image_skip_drops_the_files_with_a_count(tmp_path):
    root, bad = truncated_jpeg_tree(tmp_path)
    (root / "1" / "junk.png").write_bytes(b"not an image")
    proc = run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.on_bad_image=skip",
            "trainer.max_epochs=1",
            *QUICK,
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert "skipped 1 unreadable image file(s)" in proc.stderr  # junk.png, found before training
    assert read_metrics(tmp_path / "run")["status"] == "completed"


def test_on_bad_image_skip_survives_a_batch_with_no_readable_image(tmp_path):
    """Batches of one image: the truncated JPEG's batch is empty once it is dropped."""
    root, _bad = truncated_jpeg_tree(tmp_path)
    run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.on_bad_image=skip",
            "data.batch_size=1",
            "data.eval_batch_size=1",
            "trainer.max_epochs=1",
            *QUICK,
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "completed" and 0 <= metrics["test/acc"] <= 1


def truncate(path: Path) -> None:
    """Cut a JPEG short: its header still reads, decoding it fails."""
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        path, format="JPEG"
    )
    path.write_bytes(path.read_bytes()[:-1000])


def test_a_skipped_file_is_named_once_per_worker_not_every_epoch(tmp_path):
    root = tmp_path / "imgs"
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        write_image_folder(root / split, per_class=n, size=16, classes=[0, 1], suffix=".jpg")
    bad = next((root / "train" / "1").glob("*.jpg"))
    truncate(bad)
    proc = run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.on_bad_image=skip",
            "trainer.max_epochs=4",
            *QUICK,
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    lines = [line for line in proc.stderr.splitlines() if "skipped unreadable image" in line]
    assert 1 <= len(lines) <= 2, proc.stderr[-2000:]  # 2 workers, 4 epochs: was 2 lines each
    assert all(line == f"descentlab: skipped unreadable image {bad}" for line in lines), lines
    assert read_metrics(tmp_path / "run")["epochs"] == 4


@pytest.mark.parametrize("kind", ["junk", "truncated"])
def test_a_split_with_no_readable_image_is_one_line(tmp_path, kind):
    """Every val image unreadable: found at the header scan (junk) or when the workers decode
    them (truncated). Was: a traceback from early stopping (no val/loss), or a silent stop."""
    root = tmp_path / "imgs"
    write_image_folder(root / "train", per_class=6, size=16, classes=[0, 1], suffix=".jpg")
    write_image_folder(root / "test", per_class=2, size=16, classes=[0, 1], suffix=".jpg")
    for cls in ("0", "1"):
        (root / "val" / cls).mkdir(parents=True)
        for i in range(2):
            if kind == "junk":
                (root / "val" / cls / f"{i}.png").write_bytes(b"not an image")
            else:
                truncate(root / "val" / cls / f"{i}.jpg")
    proc = run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.on_bad_image=skip",
            "trainer.max_epochs=2",
            *QUICK,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        check=False,
    )
    line = one_error_line(proc)
    assert "no readable image" in line and "val split" in line, line


@pytest.mark.slow
def test_on_bad_image_skip_under_ddp_survives_a_batch_with_no_readable_image(tmp_path):
    """A rank whose batch is all truncated files still takes part in the gradient all-reduce
    (it hung: Lightning skipped the None batch on that rank alone)."""
    root = tmp_path / "imgs"
    write_image_folder(root / "train", per_class=8, size=16, classes=[0, 1], suffix=".jpg")
    for split in ("val", "test"):
        write_image_folder(root / split, per_class=2, size=16, classes=[0, 1], suffix=".jpg")
    for i in range(4):  # batches of 1: each of these is an empty batch on its rank
        truncate(next((root / "train" / "1").glob(f"{i}.*")))
    run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.on_bad_image=skip",
            "data.batch_size=1",
            "data.eval_batch_size=1",
            "data.num_workers=1",
            "trainer=ddp_cpu",
            "trainer.max_epochs=1",
            *QUICK,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        timeout=300,
    )
    assert read_metrics(tmp_path / "run")["status"] == "completed"


# -- data=image_folder: training ----------------------------------------------------------------
@pytest.mark.slow
def test_image_folder_end_to_end_then_fine_tuned_from_its_model(tmp_path):
    """The issue's example: PNG files in class folders, a ResNet-18 trained, tested, saved;
    then the documented starting point for one's own images fine-tunes from that model.pt."""
    root = write_image_folder(tmp_path / "digits", per_class=12, size=32)
    first = tmp_path / "first"
    run_cli(
        [
            "data=image_folder",
            f"data.root={root}",
            "model=backbone",
            "model.net.name=resnet18",
            "data.hflip=false",
            "data.num_workers=2",
            "trainer.max_epochs=2",
            f"hydra.run.dir={first}",
            *QUICK,
        ]
    )
    metrics = read_metrics(first)
    assert metrics["status"] == "completed" and "test/acc" in metrics
    assert (first / "model.pt").is_file()
    tuned = tmp_path / "tuned"
    run_cli(
        [
            "+experiment=finetune_folder",
            f"data.root={root}",
            "model.net.weights=null",
            f"model.net.checkpoint={first / 'model.pt'}",
            "data.hflip=false",
            "data.num_workers=2",
            "data.image_size=32",
            "trainer.max_epochs=2",
            f"hydra.run.dir={tuned}",
            *QUICK,
        ]
    )
    assert read_metrics(tuned)["status"] == "completed"


@pytest.mark.slow
def test_ddp_gives_each_rank_its_own_shard(tmp_path):
    root = write_image_folder(tmp_path / "imgs", per_class=10, size=16)  # 80 training images
    run_dir = tmp_path / "run"
    run_cli(
        [
            *SMALL,
            f"data.root={root}",
            "data.batch_size=8",
            "data.num_workers=1",
            "trainer=ddp_cpu",
            "trainer.max_epochs=2",
            f"hydra.run.dir={run_dir}",
            *QUICK,
        ]
    )
    metrics = read_metrics(run_dir)
    # 80 images / 2 ranks = 40 each = 5 steps of 8 per epoch; unsharded it would be 10
    assert metrics["global_step"] == 2 * math.ceil(80 / 2 / 8), metrics


@pytest.mark.slow
def test_resume_from_last_gives_the_uninterrupted_result(tmp_path):
    root = write_image_folder(tmp_path / "imgs", per_class=12, size=16)
    common = [*SMALL, f"data.root={root}", "trainer.deterministic=true", *QUICK]
    run_cli([*common, "trainer.max_epochs=3", f"hydra.run.dir={tmp_path / 'straight'}"])
    resumed = tmp_path / "resumed"
    run_cli([*common, "trainer.max_epochs=2", f"hydra.run.dir={resumed}"])
    run_cli([*common, "trainer.max_epochs=3", "ckpt_path=last", f"hydra.run.dir={resumed}"])
    straight, again = read_metrics(tmp_path / "straight"), read_metrics(resumed)
    for key in ("train/loss", "val/loss", "test/loss", "test/acc", "global_step", "best_epoch"):
        assert again[key] == pytest.approx(straight[key], abs=1e-6), key


@pytest.mark.slow
def test_resume_from_a_mid_epoch_checkpoint_continues_with_the_next_batch(tmp_path):
    """torchdata's StatefulDataLoader: the checkpoint at step 8 (6 steps per epoch) records
    the loader's position; the resumed run's batches, and so its result, are the
    uninterrupted run's. A loader without that state restarts the epoch (20 steps)."""
    root = write_image_folder(tmp_path / "imgs", per_class=12, size=16)
    common = [
        *SMALL,
        f"data.root={root}",
        "data.batch_size=16",
        "trainer.deterministic=true",
        "trainer.max_epochs=3",
        "callbacks.last_checkpoint.every_n_epochs=null",
        "callbacks.last_checkpoint.every_n_train_steps=4",
        *QUICK,
    ]
    run_cli([*common, f"hydra.run.dir={tmp_path / 'straight'}"])
    resumed = tmp_path / "resumed"
    run_cli([*common, "trainer.max_steps=8", f"hydra.run.dir={resumed}"])
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert (ckpt["global_step"], ckpt["epoch"]) == (8, 1)  # two batches into the second epoch
    run_cli([*common, "ckpt_path=last", f"hydra.run.dir={resumed}"])
    straight, again = read_metrics(tmp_path / "straight"), read_metrics(resumed)
    assert straight["global_step"] == 18
    for key in ("train/loss", "val/loss", "test/loss", "test/acc", "global_step", "best_epoch"):
        assert again[key] == pytest.approx(straight[key], abs=1e-6), key
