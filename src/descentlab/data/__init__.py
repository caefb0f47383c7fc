"""DataModules: the built-ins and data=arrays keep the dataset as tensors and batch by
indexing (see ``tensor_data``); data=image_folder streams files through a DataLoader.

The names below are imported on first use (PEP 562), so that a light module of this package
(``array_files``, read by the config's resolvers) does not import Lightning and torchvision
with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_MODULE_OF = {
    "ArraysDataModule": "arrays",
    "DigitsDataModule": "digits",
    "ImageFolderDataModule": "image_folder",
    "DiabetesDataModule": "regression",
    "TeacherDataModule": "regression",
    "TensorBatches": "tensor_data",
    "TensorDataModule": "tensor_data",
    "CIFAR10DataModule": "vision",
    "FashionMNISTDataModule": "vision",
    "MNISTDataModule": "vision",
}
__all__ = [
    "ArraysDataModule",
    "CIFAR10DataModule",
    "DiabetesDataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "TeacherDataModule",
    "TensorBatches",
    "TensorDataModule",
]  # the keys of _MODULE_OF (tests/test_data.py checks)

if TYPE_CHECKING:
    from descentlab.data.arrays import ArraysDataModule
    from descentlab.data.digits import DigitsDataModule
    from descentlab.data.image_folder import ImageFolderDataModule
    from descentlab.data.regression import DiabetesDataModule, TeacherDataModule
    from descentlab.data.tensor_data import TensorBatches, TensorDataModule
    from descentlab.data.vision import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
