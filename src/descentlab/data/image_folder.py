"""Your own images: ``data=image_folder data.root=DIR``, streamed from disk.

DIR is in torchvision's ImageFolder layout, ``DIR/<class>/<image>``, either with
``train/``, ``val/`` and ``test/`` subfolders (a missing ``val/`` or ``test/`` is carved
from ``train/`` by ``val_fraction``/``test_fraction``) or one folder split by those
fractions. Unlike the built-ins (decoded whole into tensors, see ``tensor_data``), the
files are read by a real ``torch.utils.data.DataLoader``: worker processes decode them
(PIL, through torchvision's ``default_loader``) and apply ``torchvision.transforms.v2``
(random resized crop + flip for training, resize + centre crop for evaluation), so the
data set may be far larger than memory.

With ``model=backbone`` and pretrained ``model.net.weights``, the images get the weights'
own preprocessing (``weights.transforms()``: crop size, resize size, mean, std) unless
``data.image_size``/``resize_size``/``mean``/``std`` override it.

Reproducibility: the training order comes from a ``DistributedSampler`` seeded with
``seed`` (Lightning calls its ``set_epoch``), and each sample's random augmentation is
drawn from a generator seeded with (seed, epoch, index). The batches are therefore the
same for any ``num_workers`` and after a resume. The training loader is torchdata's
``StatefulDataLoader``: a mid-epoch checkpoint records how far into the epoch it was, and a
resumed run continues with the next batch. Under DDP the sampler gives each rank its own shard.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from torchdata.stateful_dataloader import StatefulDataLoader

from descentlab.errors import DataError, DataNotFoundError
from descentlab.rules import DATA, checked

SPLITS = ("train", "val", "test")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEFAULT_SIZE = 64  # without pretrained weights: small enough for a CPU, big enough for photos


class UnreadableImageError(DataError):
    """An image file that cannot be decoded, named by its path.

    Raised in a DataLoader worker, it reaches the main process rebuilt from its text
    ("Caught ... in DataLoader worker process N. Original Traceback ... Type: message"):
    only the original message is kept, so the user sees one line, not the worker's traceback.
    """

    def __init__(self, message: str):
        lines = str(message).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught "):
            message = lines[-1].split(": ", 1)[-1]
        super().__init__(message)


# -- the folder -------------------------------------------------------------------------
def split_dirs(root: str | Path) -> dict[str, Path | None]:
    """``{split: folder}``: ROOT/train, ROOT/val, ROOT/test where they exist; else all of ROOT
    is ``train`` (``None``: carved from train by a fraction)."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(
            f"data.root={str(root)!r} is not a folder (expected ROOT/<class>/<image>)"
        )
    if (root / "train").is_dir():
        return {s: (root / s if (root / s).is_dir() else None) for s in SPLITS}
    return {"train": root, "val": None, "test": None}


def class_names(root: str | Path) -> list[str]:
    """The class folders of the training images, sorted (their index is the label)."""
    train = split_dirs(root)["train"]
    names = sorted(e.name for e in os.scandir(train) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise DataError(f"{train} has no class folders (expected {train}/<class>/<image>)")
    return names


def check_no_folder_read_twice(folder: Path) -> None:
    """Refuse a folder link that leads to a folder already read: torchvision's
    ``make_dataset`` follows links (``os.walk(followlinks=True)``), so a link to an ancestor
    listed every image below it again and again under the link's class (a cycle, until the
    path grew too long), and two links to one folder gave its images two labels."""
    seen: dict[str, str] = {}
    for current, subfolders, _ in os.walk(folder, followlinks=True):
        seen.setdefault(os.path.realpath(current), current)
        for name in list(subfolders):
            path = os.path.join(current, name)
            target = os.path.realpath(path)
            if target in seen:  # an ancestor, or a folder listed already
                raise DataError(
                    f"{path}: a folder link to {target}, also read as {seen[target]}: its "
                    "images would be read twice (remove the link)"
                )
            seen[target] = path


def scan(folder: Path, classes: list[str]) -> list[tuple[str, int]]:
    """``(path, label)`` of every image under ``folder/<class>/``, checking the classes match."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
    if missing:
        raise DataError(
            f"{folder} has no folder for class {missing[0]!r}, which the training images have"
        )
    if extra:
        raise DataError(
            f"{folder / extra[0]}: class {extra[0]!r} is not among the training classes {classes}"
        )
    check_no_folder_read_twice(folder)
    samples = make_dataset(
        folder, {c: i for i, c in enumerate(classes)}, IMG_EXTENSIONS, allow_empty=True
    )
    counts = torch.bincount(
        torch.tensor([y for _, y in samples], dtype=torch.long), minlength=len(classes)
    )
    for name, count in zip(classes, counts.tolist(), strict=True):
        if count == 0:
            raise DataError(f"{folder / name} has no image files ({', '.join(IMG_EXTENSIONS)})")
    return samples


def readable(path: str) -> bool:
    """Whether PIL recognises the file as an image (reads its header only: cheap)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # noqa: BLE001 - whatever PIL raises, the file is not a usable image
        return False


def drop_unreadable(
    samples: list[tuple[str, int]], on_bad_image: str, say: bool = True
) -> list[tuple[str, int]]:
    """Stop at the first file that is not an image (``error``), or drop them all with a count
    (printed when ``say``: by one rank only)."""
    kept = []
    for path, label in samples:
        if readable(path):
            kept.append((path, label))
        elif on_bad_image == "error":
            raise UnreadableImageError(
                f"{path}: not a readable image (remove it, or set data.on_bad_image=skip)"
            )
    if len(kept) < len(samples) and say:
        bad = len(samples) - len(kept)
        print(
            f"descentlab: skipped {bad} unreadable image file(s) of {len(samples)}", file=sys.stderr
        )
    return kept


# -- preprocessing ----------------------------------------------------------------------
def preprocessing(
    name: str | None,
    weights: str | None,
    image_size: int | None = None,
    resize_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict:
    """Crop size, resize size, mean and std: the config's values, else the pretrained
    weights' own (``weights.transforms()``), else 64 px and ImageNet's statistics."""
    preset: dict = {}
    if name and weights:
        from torchvision import models

        try:
            preset_tf = models.get_model_weights(name).verify(weights).transforms()
        except (ValueError, KeyError):
            preset_tf = None  # an unknown name: the model's own check reports it
        if preset_tf is not None:
            preset = {
                "crop_size": preset_tf.crop_size[0],
                "resize_size": preset_tf.resize_size[0],
                "mean": tuple(preset_tf.mean),
                "std": tuple(preset_tf.std),
            }
    crop = int(image_size or preset.get("crop_size", DEFAULT_SIZE))
    # torchvision's presets resize to 256 for a 224 crop: keep that ratio for other sizes
    resize = int(
        resize_size or (preset.get("resize_size") if not image_size else 0) or round(crop * 8 / 7)
    )
    return {
        "crop_size": crop,
        "resize_size": resize,
        "mean": tuple(mean or preset.get("mean", IMAGENET_MEAN)),
        "std": tuple(std or preset.get("std", IMAGENET_STD)),
    }


def build_transforms(prep: dict, train: bool, crop_scale: Sequence[float] | None, hflip: bool):
    """transforms.v2: random resized crop (+ flip) for training, resize + centre crop otherwise."""
    from torchvision.transforms import v2

    if train and crop_scale is not None:
        geometry = [
            v2.RandomResizedCrop(prep["crop_size"], scale=tuple(crop_scale), antialias=True)
        ]
        if hflip:
            geometry.append(v2.RandomHorizontalFlip())
    else:
        geometry = [
            v2.Resize(prep["resize_size"], antialias=True),
            v2.CenterCrop(prep["crop_size"]),
        ]
    return v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(prep["mean"]), std=list(prep["std"])),
        ]
    )


# -- the dataset and its sampler ----------------------------------------------------------
class ImageFiles(Dataset):
    """``(image tensor, label)`` for a list of ``(path, label)``; decoded on access.

    An index may come with a seed (``(index, seed)``, see :class:`SeededShardSampler`):
    the random transform is then drawn from that seed, whichever worker runs it.
    """

    def __init__(self, samples: list[tuple[str, int]], transform, skip_bad: bool = False):
        self.samples, self.transform, self.skip_bad = samples, transform, skip_bad
        self._reported: set[str] = set()  # unreadable files already named (skip_bad)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item):
        from torchvision.datasets.folder import default_loader

        index, seed = item if isinstance(item, tuple) else (item, None)
        path, label = self.samples[index]
        try:
            image = default_loader(path)  # PIL, converted to RGB (grayscale files too)
        except Exception as err:  # noqa: BLE001 - a truncated/corrupt file, caught here to name it
            if self.skip_bad:
                if path not in self._reported:  # one line per file and process, not per epoch
                    self._reported.add(path)
                    print(f"descentlab: skipped unreadable image {path}", file=sys.stderr)
                return None
            raise UnreadableImageError(
                f"{path}: not a readable image ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                f"remove it, or set data.on_bad_image=skip"
            ) from None
        if seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
            # the CPU generator only (transforms v2 draw from it): torch.manual_seed also
            # seeds every accelerator and records a stack trace, ~100x slower per image
            torch.default_generator.manual_seed(seed)
            return self.transform(image), label


def collate_skipping(batch):
    """``default_collate`` without the samples that were skipped (``None``). When every sample
    of the batch was, an empty batch ``(x, y)`` with no rows: not ``None``, which Lightning
    would skip before the step on this rank alone, leaving the other DDP ranks waiting in
    the gradient all-reduce (the Classifier's steps handle the empty batch)."""
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return default_collate(kept)


class SeededShardSampler(DistributedSampler):
    """torch's ``DistributedSampler`` (this rank's shard, order from seed + epoch) that also
    hands each index a seed for its augmentation, derived from (seed, epoch, index).

    The epoch is read from ``epoch_fn`` (the trainer's) when an epoch's iteration starts:
    Lightning's ``set_epoch`` comes too late on a resume, after DataLoader workers have
    already drawn the first indices.
    """

    def __init__(self, *args, epoch_fn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_fn = epoch_fn

    def __iter__(self):
        if self.epoch_fn is not None:
            self.epoch = self.epoch_fn()
        for index in super().__iter__():
            yield index, (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index


# -- the DataModule -------------------------------------------------------------------------
class ImageFolderDataModule(L.LightningDataModule):
    """Images from ``root`` (ImageFolder layout) through DataLoaders.

    Args:
        root: the folder (``root/<class>/<image>`` or ``root/{train,val,test}/<class>/<image>``).
        batch_size, eval_batch_size: per-device batch sizes.
        val_fraction, test_fraction: shares carved from the training images for a
            missing ``val/``/``test/`` folder (seeded by ``seed``).
        train_fraction: keep this share of the training images (fewer labels).
        num_workers: loader processes per device (``None``: the CPU count shared by the ranks, at most 8).
        pin_memory: page-locked batches for a fast host-to-GPU copy (``None``: when training on CUDA).
        persistent_workers: keep the workers between epochs (no start-up cost each epoch).
        image_size, resize_size, mean, std: preprocessing (``None``: see :func:`preprocessing`).
        arch, weights: the backbone and its pretrained weights, whose preprocessing is used.
        crop_scale: RandomResizedCrop's area range for training (``None``: no random crop).
        hflip: flip training images left-right at random (not for digits or text).
        on_bad_image: ``error`` (stop, naming the file) or ``skip`` (drop it, with a count).
    """

    @checked
    def __init__(
        self,
        root: str,
        batch_size: Annotated[int, DATA["batch_size"]] = 32,
        eval_batch_size: Annotated[int, DATA["eval_batch_size"]] = 64,
        val_fraction: Annotated[float, DATA["val_fraction"]] = 0.1,
        test_fraction: Annotated[float, DATA["test_fraction"]] = 0.1,
        train_fraction: Annotated[float, DATA["train_fraction"]] = 1.0,
        seed: int = 0,
        num_workers: Annotated[int | None, DATA["num_workers"]] = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        image_size: Annotated[int | None, DATA["image_size"]] = None,
        resize_size: Annotated[int | None, DATA["resize_size"]] = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        arch: str | None = None,
        weights: str | None = None,
        crop_scale: Sequence[float] | None = (0.35, 1.0),
        hflip: bool = True,
        on_bad_image: Annotated[str, DATA["on_bad_image"]] = "error",
        num_classes: int | None = None,
        dims: Sequence[int] | None = None,
        shuffle: bool = True,
    ):
        super().__init__()
        self.root = str(root)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.train_fraction, self.seed, self.shuffle = train_fraction, seed, shuffle
        self._num_workers, self._pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers
        self.prep = preprocessing(arch, weights, image_size, resize_size, mean, std)
        self.crop_scale, self.hflip, self.on_bad_image = crop_scale, hflip, on_bad_image
        self.dims = (3, self.prep["crop_size"], self.prep["crop_size"])
        self.classes: list[str] = []
        self.samples: dict[str, list[tuple[str, int]]] = {}
        self.num_classes = num_classes

    def setup(self, stage: str | None = None) -> None:
        if self.samples:
            return
        dirs = split_dirs(self.root)
        self.classes = class_names(self.root)
        self.num_classes = len(self.classes)
        scanned = {s: scan(d, self.classes) for s, d in dirs.items() if d is not None}
        train = scanned["train"]
        order = torch.randperm(
            len(train), generator=torch.Generator().manual_seed(self.seed)
        ).tolist()
        for split, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            if split not in scanned:  # carve it from the training images
                n = max(1, round(fraction * len(train)))
                scanned[split], order = [train[i] for i in order[:n]], order[n:]
        train = [train[i] for i in sorted(order)]
        if self.train_fraction < 1.0:
            keep = max(1, round(self.train_fraction * len(train)))
            idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed + 1))
            train = [train[i] for i in sorted(idx[:keep].tolist())]
        scanned["train"] = train
        rank, _ = self._rank_world()
        self.samples = {
            s: drop_unreadable(scanned[s], self.on_bad_image, say=rank == 0) for s in SPLITS
        }
        for split, samples in self.samples.items():
            if not samples:
                raise DataError(
                    f"{self.root}: no readable image in the {split} split "
                    f"(data.on_bad_image=skip dropped all {len(scanned[split])})"
                )

    def split_targets(self) -> dict[str, torch.Tensor]:
        """Each split's labels (after ``setup``), for the task to check."""
        return {
            split: torch.tensor([label for _path, label in samples], dtype=torch.long)
            for split, samples in self.samples.items()
        }

    # -- loaders ----------------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    @property
    def num_workers(self) -> int:
        if self._num_workers is not None:
            return int(self._num_workers)
        # every rank of a node starts its own workers: share the cores between them
        return max(1, min(8, (os.cpu_count() or 1) // self._rank_world()[1]))

    @property
    def pin_memory(self) -> bool:
        if self._pin_memory is not None:
            return bool(self._pin_memory)
        trainer = self.trainer
        return bool(trainer is not None and trainer.strategy.root_device.type == "cuda")

    def _epoch(self) -> int:
        # the epoch being started, as Lightning numbers it for set_epoch (current_epoch is
        # one behind when a run resumes from an end-of-epoch checkpoint)
        return self.trainer.fit_loop.epoch_progress.current.processed

    def _loader(self, split: str) -> DataLoader:
        if not self.samples:
            self.setup()
        train = split == "train"
        dataset = ImageFiles(
            self.samples[split],
            build_transforms(self.prep, train, self.crop_scale, self.hflip),
            skip_bad=self.on_bad_image == "skip",
        )
        sampler = None
        if train:
            rank, world = self._rank_world()
            epoch_fn = self._epoch if self.trainer is not None else None
            sampler = SeededShardSampler(
                dataset,
                num_replicas=world,
                rank=rank,
                shuffle=self.shuffle,
                seed=self.seed,
                epoch_fn=epoch_fn,
            )
        workers = self.num_workers
        # Training uses torchdata's StatefulDataLoader, a drop-in DataLoader with
        # state_dict/load_state_dict: Lightning saves its position in a mid-epoch checkpoint
        # and a resumed run continues with the very next batch.
        loader_class = StatefulDataLoader if train else DataLoader
        return loader_class(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            collate_fn=collate_skipping,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
