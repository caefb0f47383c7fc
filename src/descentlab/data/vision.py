"""torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10) loaded once into tensors.

torchvision's own dataset classes read (and, with ``download=True``, fetch) the files;
we then take their decoded arrays (``.data``, ``.targets``) as tensors instead of
iterating samples through PIL, which is what makes an epoch cheap (see ``tensor_data``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from descentlab.data.tensor_data import Split, TensorDataModule
from descentlab.errors import DataError, DataNotFoundError


class TorchvisionDataModule(TensorDataModule):
    """Base for torchvision datasets with an official train/test split.

    The last ``val_size`` images of a seeded permutation of the official training set
    become the validation split. Images are scaled to [0, 1] and standardized with the
    dataset's channel ``mean`` and ``std``.
    """

    dataset_name: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    image_shape: tuple[int, ...] = ()  # (C, H, W): ``dims`` unless given

    def __init__(
        self, data_dir: str = "data", download: bool = False, val_size: int = 5000, **kwargs
    ):
        kwargs.setdefault("dims", self.image_shape)
        super().__init__(**kwargs)
        self.data_dir = str(data_dir)
        self.download = download
        self.val_size = val_size

    def dataset_class(self):
        import torchvision.datasets  # imported only when a torchvision dataset is used

        return getattr(torchvision.datasets, self.dataset_name)

    def prepare_data(self) -> None:
        # Lightning calls this on one process only: the place to download.
        if self.download:
            for train in (True, False):
                self.dataset_class()(self.data_dir, train=train, download=True)

    def _open(self, train: bool):
        try:
            return self.dataset_class()(self.data_dir, train=train, download=False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted..."
            where = Path(self.data_dir).resolve()
            raise DataNotFoundError(
                f"{self.dataset_name} is not in {where} ({err}); "
                f"add data.download=true to fetch it, set data.data_dir=DIR, or use data=digits"
            ) from None
        except (AssertionError, ValueError, KeyError, IndexError, OSError, EOFError) as err:
            # torchvision's readers assert on a wrong magic number, fail on truncated files
            where = Path(self.data_dir).resolve()
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(
                f"the {self.dataset_name} files under {where} are not in {self.dataset_name}'s format "
                f"({detail}); delete them and set data.download=true, or put valid files there"
            ) from None

    def _to_tensors(self, dataset) -> Split:
        images = torch.as_tensor(dataset.data)
        if images.ndim == 3:  # (N, H, W) grayscale
            images = images.unsqueeze(1)
        else:  # (N, H, W, C) colour, as CIFAR stores it
            images = images.permute(0, 3, 1, 2)
        x = images.float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        x = (x - mean) / std
        y = torch.as_tensor(dataset.targets, dtype=torch.long)
        return x.contiguous(), y

    def load_splits(self) -> dict[str, Split]:
        x, y = self._to_tensors(self._open(train=True))
        test = self._to_tensors(self._open(train=False))
        val_size = min(self.val_size, len(x) // 5)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        train_idx, val_idx = order[val_size:], order[:val_size]
        return {
            "train": (x[train_idx], y[train_idx]),
            "val": (x[val_idx], y[val_idx]),
            "test": test,
        }


class MNISTDataModule(TorchvisionDataModule):
    """MNIST: 60k/10k 28x28 grayscale digits (55k train / 5k val by default)."""

    dataset_name = "MNIST"
    mean, std = (0.1307,), (0.3081,)
    image_shape = (1, 28, 28)


class FashionMNISTDataModule(TorchvisionDataModule):
    """Fashion-MNIST: 60k/10k 28x28 grayscale clothing images."""

    dataset_name = "FashionMNIST"
    mean, std = (0.2860,), (0.3530,)
    image_shape = (1, 28, 28)


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10: 50k/10k 32x32 colour images in 10 classes."""

    dataset_name = "CIFAR10"
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    image_shape = (3, 32, 32)
