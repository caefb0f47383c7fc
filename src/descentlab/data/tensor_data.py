"""In-memory datasets batched by indexing.

Small datasets (digits, MNIST, CIFAR-10) fit in memory many times over, so they are
kept as two tensors ``x`` (N, C, H, W) and ``y`` (N,) on the training device and a
minibatch is ``x[idx], y[idx]`` for a slice ``idx`` of a permutation. That removes the
per-sample ``__getitem__`` + collate + host-to-device copy of a ``DataLoader``, which
dominates the cost of an epoch on data this small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Annotated

import lightning as L
import torch
from torch import Tensor

from descentlab.errors import DataError, ParameterError
from descentlab.rules import DATA, checked

Split = tuple[Tensor, Tensor]


class TensorBatches:
    """An iterable of ``(x, y)`` minibatches over in-memory tensors.

    Each epoch draws a permutation ``perm`` of ``0..N-1`` from a generator seeded with
    ``seed + epoch`` (the same on every rank), keeps ``N - N % world_size`` of it and
    gives rank ``r`` the positions ``perm[r::world_size]`` — the same interleaving as
    ``torch.utils.data.DistributedSampler``. With a per-rank batch size ``b``, batch ``k``
    of all ranks together is then exactly positions ``[k·W·b, (k+1)·W·b)`` of ``perm``:
    a DDP step averages the gradient of the same global batch a single process with
    batch size ``W·b`` would see.

    The iterator also reports its position (``state_dict``) so that Lightning can
    resume mid-epoch from a checkpoint and continue with the very next batch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn: Callable[[], int] | None = None,
    ):
        if batch_size <= 0:
            raise ParameterError("batch_size", batch_size, "a positive integer")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch_fn = epoch_fn or (lambda: 0)
        self._batches_done = 0  # batches yielded in the current pass
        self._resume_from = 0  # batches to skip at the start of the next pass

    @property
    def shard_size(self) -> int:
        return len(self.x) // self.world_size

    def __len__(self) -> int:
        return -(-self.shard_size // self.batch_size)  # ceil division

    def indices(self, epoch: int) -> Tensor:
        """This rank's sample indices for ``epoch``, in the order they are visited."""
        n = len(self.x)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        usable = n - n % self.world_size
        return order[self.rank : usable : self.world_size]

    def __iter__(self) -> Iterator[Split]:
        shard = self.indices(self.epoch_fn()).to(self.x.device)
        start, self._resume_from = self._resume_from, 0
        self._batches_done = start
        for i in range(start * self.batch_size, len(shard), self.batch_size):
            idx = shard[i : i + self.batch_size]
            self._batches_done += 1
            yield self.x[idx], self.y[idx]

    # Lightning saves and restores these with the fit loop (mid-epoch resume).
    def state_dict(self) -> dict:
        return {"batches_done": self._batches_done}

    def load_state_dict(self, state: dict) -> None:
        self._resume_from = int(state.get("batches_done", 0))


def check_labels(splits: dict[str, Split], num_classes: int | None, source: str) -> None:
    """Every label is a class id in 0..num_classes-1 (≥ 0 if ``None``), every split has samples."""
    for name, (_x, y) in splits.items():
        if len(y) == 0:
            raise DataError(f"{source}: the {name} split is empty")
        low, high = int(y.min()), int(y.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            bad = low if low < 0 else high
            raise DataError(
                f"{source}: the {name} split has label {bad}, outside the dataset's classes "
                f"0..{(num_classes or 1) - 1 if num_classes else 'N'} (corrupt or foreign label file?)"
            )


def select_classes(x: Tensor, y: Tensor, classes: Sequence[int] | None) -> Split:
    """Keep only ``classes`` and relabel them ``0..len(classes)-1`` in the order given."""
    if classes is None:
        return x, y
    classes = [int(c) for c in classes]
    lookup = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    for new, old in enumerate(classes):
        if 0 <= old < len(lookup):
            lookup[old] = new
    mapped = lookup[y]
    keep = mapped >= 0
    return x[keep], mapped[keep]


def noisy_labels(y: Tensor, p: float, num_classes: int, seed: int) -> Tensor:
    """``y`` with a share ``p`` of its entries (chosen at random) replaced by uniformly
    random classes; the same ``seed`` gives the same labels (the split's own generator is
    not touched, so the data order does not change with ``p``)."""
    generator = torch.Generator().manual_seed(seed + 2)
    replace = torch.rand(len(y), generator=generator) < p
    random = torch.randint(0, num_classes, (len(y),), generator=generator)
    return torch.where(replace, random, y)


class TensorDataModule(L.LightningDataModule):
    """Base DataModule: subclasses load ``train``/``val``/``test`` tensors in ``load_splits``.

    ``targets`` says what ``y`` holds: ``classes`` (integer labels, the default) or ``values``
    (real numbers, for ``task=regression``); the task checks the data against it.

    Args:
        batch_size: per-device minibatch size, or ``"full"`` for full-batch gradient
            descent (one step per epoch over the whole training shard).
        eval_batch_size: batch size for validation/test/predict.
        classes: keep only these classes, relabelled ``0..k-1`` (``None``: all).
        train_fraction: keep this fraction of the training split (fewer labels).
        label_noise: p, the share of training labels replaced by a class drawn uniformly
            at random (seeded; validation and test keep their true labels). p = 1 is the
            random-label experiment: a network that still fits the training set has
            memorized it, and its test accuracy is chance. A replaced label keeps its value
            with probability 1/K, so a share p·(1 − 1/K) of the labels end up wrong.
        seed: seeds the split, the label subset and the shuffling order.
        num_classes: classes the model predicts (the subset's size when ``classes`` is set).
        num_classes_total: classes in the full dataset.
        dims: the shape ``(C, H, W)`` of one sample.
        augment: a batch transform applied on the device to training batches only.
        target_size: values per sample of real-valued targets (``None`` for labels).
    """

    targets = "classes"

    @checked
    def __init__(
        self,
        batch_size: Annotated[int | str, DATA["batch_size"]] = 64,
        eval_batch_size: Annotated[int, DATA["eval_batch_size"]] = 1024,
        classes: Sequence[int] | None = None,
        train_fraction: Annotated[float, DATA["train_fraction"]] = 1.0,
        label_noise: Annotated[float, DATA["label_noise"]] = 0.0,
        seed: int = 0,
        num_classes: int | None = 10,
        num_classes_total: int | None = None,
        dims: Sequence[int] = (1, 8, 8),
        shuffle: bool = True,
        augment: Callable[[Tensor], Tensor] | None = None,
        target_size: int | None = None,
    ):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.classes = list(classes) if classes is not None else None
        self.train_fraction = train_fraction
        self.label_noise = float(label_noise)
        self.seed = seed
        self.num_classes = num_classes
        self.num_classes_total = num_classes_total or num_classes
        self._total_known = num_classes_total is not None or classes is None
        self.dims = tuple(dims)
        self.shuffle = shuffle
        self.augment = augment
        self.target_size = target_size
        self.splits: dict[str, Split] = {}

    # -- subclasses -------------------------------------------------------------------
    def load_splits(self) -> dict[str, Split]:
        """Return ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` as float/long tensors."""
        raise NotImplementedError

    # -- Lightning hooks ----------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = self.load_splits()
        if any(y.is_floating_point() for _x, y in loaded.values()):
            self._refuse_label_options()
            splits = loaded
        else:
            # the dataset's own class count; unknown when only a subset's size was given
            total = self.num_classes_total if self._total_known else None
            check_labels(loaded, total, type(self).__name__)
            splits = {name: select_classes(x, y, self.classes) for name, (x, y) in loaded.items()}
        if self.train_fraction < 1.0:
            x, y = splits["train"]
            keep = max(1, round(self.train_fraction * len(x)))
            generator = torch.Generator().manual_seed(self.seed + 1)
            idx = torch.randperm(len(x), generator=generator)[:keep]
            splits["train"] = (x[idx], y[idx])
        if self.label_noise > 0:
            x, y = splits["train"]
            splits["train"] = (x, noisy_labels(y, self.label_noise, self.num_classes, self.seed))
        self.splits = {name: (x.contiguous(), y.contiguous()) for name, (x, y) in splits.items()}

    def _refuse_label_options(self) -> None:
        """Class subsets and label noise are about labels: real-valued targets have none."""
        options = (("classes", self.classes, None), ("label_noise", self.label_noise, 0.0))
        for key, value, default in options:
            if value != default:
                raise DataError(
                    f"data.{key}={value!r} acts on class labels, and {type(self).__name__} has "
                    f"real-valued targets: leave it at {default}"
                )

    def split_targets(self) -> dict[str, Tensor]:
        """Each split's targets ``y`` (after ``setup``), for the task to check."""
        return {name: y for name, (_x, y) in self.splits.items()}

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _batches(
        self,
        split: str,
        batch_size: int | str,
        shuffle: bool,
        rank_world: tuple[int, int] | None = None,
    ) -> TensorBatches:
        """The split's batches for this rank (``rank_world``: the trainer's rank and world size).

        Without shuffling a rank visits the same rows every epoch, ``[rank::world_size]``,
        so only those go to its device (val and test always; train with ``data.shuffle=false``).
        A shuffled split is held whole: each epoch's permutation gives the rank other rows.
        """
        if not self.splits:
            self.setup()
        rank, world = rank_world or self._rank_world()
        x, y = self.splits[split]
        if batch_size == "full":
            batch_size = max(1, len(x) // world)
        if not shuffle and world > 1:
            usable = len(x) - len(x) % world  # as TensorBatches.indices
            x, y = x[rank:usable:world], y[rank:usable:world]
            rank, world = 0, 1
        device = self._device()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return TensorBatches(
            x,
            y,
            int(batch_size),
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            epoch_fn=self._current_epoch,
        )

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, self.shuffle)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size, False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, False)

    def predict_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, False)

    def transfer_batch_to_device(
        self, batch: Split, device: torch.device, dataloader_idx: int
    ) -> Split:
        # Batches are already on the training device (see _batches): skip Lightning's
        # generic collection walk, keep a plain .to() for anything that is not.
        if isinstance(batch, torch.Tensor):  # inputs alone (the model summary's example)
            return batch.to(device, non_blocking=True)
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def on_after_batch_transfer(self, batch: Split, dataloader_idx: int) -> Split:
        # Augment on the device, training batches only (never val/test).
        training = self.trainer is not None and self.trainer.training
        if self.augment is not None and training and not isinstance(batch, torch.Tensor):
            x, y = batch
            return self.augment(x), y
        return batch
