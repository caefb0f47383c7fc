"""Data with real-valued targets, offline: scikit-learn's diabetes data and a teacher network."""

from __future__ import annotations

import math
from typing import Annotated

import torch

from descentlab.data.tensor_data import Split, TensorDataModule
from descentlab.errors import ParameterError
from descentlab.rules import DATA, POSITIVE_INT, checked, one_of


def split_by_fractions(
    x, y, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    """A seeded shuffle, then ``test_fraction`` for test, ``val_fraction`` for val, the rest train."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test, n_val = round(test_fraction * len(x)), round(val_fraction * len(x))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}


def standardized(splits: dict[str, Split], targets: bool) -> dict[str, Split]:
    """Each feature (and, with ``targets``, the target) shifted and scaled by the *training*
    split's mean and standard deviation, so no statistic of val/test leaks into training."""
    x_train, y_train = splits["train"]
    x_mean, x_std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
    y_mean, y_std = y_train.mean(0), y_train.std(0).clamp_min(1e-12)
    return {
        name: ((x - x_mean) / x_std, (y - y_mean) / y_std if targets else y)
        for name, (x, y) in splits.items()
    }


class DiabetesDataModule(TensorDataModule):
    """scikit-learn's bundled diabetes data: 442 patients, 10 features (age, sex, BMI, blood
    pressure, six blood serum values), target a measure of disease progression one year later.

    With ``standardize`` (default) features and target are standardized by the training split's
    statistics, so a model that always predicts the training mean has MSE ≈ 1 and R² ≈ 0 (the
    target's variance is 1; the lecture's loss is then ½·MSE).
    """

    targets = "values"

    @checked
    def __init__(
        self,
        val_fraction: Annotated[float, DATA["val_fraction"]] = 0.15,
        test_fraction: Annotated[float, DATA["test_fraction"]] = 0.2,
        standardize: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("dims", (10,))
        kwargs.setdefault("target_size", 1)
        super().__init__(**kwargs)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.standardize = standardize

    def load_splits(self) -> dict[str, Split]:
        from sklearn.datasets import load_diabetes  # imported only when this data is used

        data = load_diabetes(scaled=False)
        x = torch.tensor(data.data, dtype=torch.float32)
        y = torch.tensor(data.target, dtype=torch.float32)
        splits = split_by_fractions(x, y, self.val_fraction, self.test_fraction, self.seed)
        return standardized(splits, targets=True) if self.standardize else splits


class TeacherDataModule(TensorDataModule):
    """Inputs x ~ N(0, I_d) labelled by a seeded linear teacher with known noise:

        regression:  y = W* x + b* + σ ε,   ε ~ N(0, I_k)
        binary:      y = 1[w*·x + b* + σ ε > 0]

    with W* ~ N(0, 1/d) entrywise (so each clean target has variance ≈ 1) and b* ~ N(0, 1).
    The noise level σ = ``noise`` is known, so the best any model can do is known: for
    regression the teacher itself reaches test MSE σ² (the lecture's ½‖ŷ − y‖²: k·σ²/2), and
    a linear model (``model.net.hidden_dims=[]``) can learn it. The teacher is drawn from
    ``teacher_seed``, the samples from ``seed``: seeds vary the sample, not the problem.

    ``in_features=1 kind=binary`` is the lecture's worked example: one input x, label y.
    """

    @checked
    def __init__(
        self,
        kind: Annotated[str, one_of("regression", "binary")] = "regression",
        samples: Annotated[int, POSITIVE_INT] = 1000,
        in_features: Annotated[int, POSITIVE_INT] = 10,
        out_features: Annotated[int, POSITIVE_INT] = 1,
        noise: Annotated[float, DATA["noise"]] = 0.1,
        teacher_seed: int = 0,
        val_fraction: Annotated[float, DATA["val_fraction"]] = 0.15,
        test_fraction: Annotated[float, DATA["test_fraction"]] = 0.2,
        **kwargs,
    ):
        if kind == "binary" and out_features != 1:
            raise ParameterError("out_features", out_features, "1 for kind=binary (one label)")
        kwargs.setdefault("dims", (in_features,))
        kwargs.setdefault("num_classes", 2)
        if kind == "regression":
            kwargs.setdefault("target_size", out_features)
        super().__init__(**kwargs)
        self.kind, self.samples = kind, samples
        self.in_features, self.out_features = in_features, out_features
        self.noise, self.teacher_seed = float(noise), teacher_seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @property
    def targets(self) -> str:
        return "values" if self.kind == "regression" else "classes"

    def teacher(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W*, b*)``: the clean target of x is W* x + b*."""
        generator = torch.Generator().manual_seed(self.teacher_seed)
        weight = torch.randn(self.out_features, self.in_features, generator=generator)
        weight /= math.sqrt(self.in_features)
        return weight, torch.randn(self.out_features, generator=generator)

    def load_splits(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.seed + 3)
        x = torch.randn(self.samples, self.in_features, generator=generator)
        weight, bias = self.teacher()
        noisy = (
            x @ weight.T
            + bias
            + self.noise * torch.randn(self.samples, self.out_features, generator=generator)
        )
        if self.kind == "binary":
            y = (noisy[:, 0] > 0).long()
        else:
            y = noisy.squeeze(1) if self.out_features == 1 else noisy
        return split_by_fractions(x, y, self.val_fraction, self.test_fraction, self.seed)
