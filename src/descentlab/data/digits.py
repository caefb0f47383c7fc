"""scikit-learn's bundled 8x8 digits: the default dataset, available offline."""

from __future__ import annotations

from typing import Annotated

import torch

from descentlab.data.tensor_data import Split, TensorDataModule
from descentlab.rules import DATA, checked


class DigitsDataModule(TensorDataModule):
    """1,797 grayscale 8x8 digit images, pixel values 0..16 scaled to [0, 1].

    The split is fixed by ``seed``: ``test_fraction`` for test, ``val_fraction`` for
    validation, the rest for training.
    """

    @checked
    def __init__(
        self,
        val_fraction: Annotated[float, DATA["val_fraction"]] = 0.15,
        test_fraction: Annotated[float, DATA["test_fraction"]] = 0.2,
        **kwargs,
    ):
        kwargs.setdefault("dims", (1, 8, 8))
        super().__init__(**kwargs)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction

    def load_splits(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits  # imported only when digits are used

        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        n_test = round(self.test_fraction * len(x))
        n_val = round(self.val_fraction * len(x))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
