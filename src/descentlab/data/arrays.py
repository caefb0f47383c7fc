"""Your own arrays: ``data=arrays data.path=FILE`` with a ``.npz`` or ``.pt`` file.

The file holds features ``x`` of any shape (N, ...) and targets ``y``: integer labels (N,)
(``task=classification`` or ``task=binary``; booleans count as 0/1) or real values of any
shape (N, ...) (floats: ``task=regression``): ``numpy.savez(FILE, x=..., y=...)`` or
``torch.save({"x": ..., "y": ...}, FILE)``. Such
data (tabular, pre-extracted features) fits in memory, so it takes the in-memory tensor
path (``tensor_data``) and is split by seeded fractions like the digits.
"""

from __future__ import annotations

from typing import Annotated

import torch

from descentlab.data.array_files import SUFFIXES, array_info, load_arrays
from descentlab.data.tensor_data import Split, TensorDataModule
from descentlab.rules import DATA, checked

__all__ = ["SUFFIXES", "ArraysDataModule", "array_info", "load_arrays"]


class ArraysDataModule(TensorDataModule):
    """Features and labels from one file, split by ``seed``: ``test_fraction`` for test,
    ``val_fraction`` for validation, the rest for training (as :class:`DigitsDataModule`)."""

    @checked
    def __init__(
        self,
        path: str,
        val_fraction: Annotated[float, DATA["val_fraction"]] = 0.15,
        test_fraction: Annotated[float, DATA["test_fraction"]] = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.path = str(path)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @property
    def targets(self) -> str:  # what the file's y holds (read once, by the config already)
        return "classes" if array_info(self.path)[1] is not None else "values"

    def load_splits(self) -> dict[str, Split]:
        x, y = load_arrays(self.path)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        n_test = round(self.test_fraction * len(x))
        n_val = round(self.val_fraction * len(x))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
