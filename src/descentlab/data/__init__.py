"""DataModules: all keep the dataset as tensors and batch by indexing (see ``tensor_data``)."""

from descentlab.data.digits import DigitsDataModule
from descentlab.data.tensor_data import TensorBatches, TensorDataModule
from descentlab.data.vision import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "CIFAR10DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "MNISTDataModule",
    "TensorBatches",
    "TensorDataModule",
]
