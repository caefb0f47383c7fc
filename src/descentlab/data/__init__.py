"""DataModules: the built-ins and data=arrays keep the dataset as tensors and batch by
indexing (see ``tensor_data``); data=image_folder streams files through a DataLoader."""

from descentlab.data.arrays import ArraysDataModule
from descentlab.data.digits import DigitsDataModule
from descentlab.data.image_folder import ImageFolderDataModule
from descentlab.data.regression import DiabetesDataModule, TeacherDataModule
from descentlab.data.tensor_data import TensorBatches, TensorDataModule
from descentlab.data.vision import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "ArraysDataModule",
    "ImageFolderDataModule",
    "CIFAR10DataModule",
    "DiabetesDataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "MNISTDataModule",
    "TensorBatches",
    "TeacherDataModule",
    "TensorDataModule",
]
