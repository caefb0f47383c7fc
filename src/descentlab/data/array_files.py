"""Reading a ``data=arrays`` file: ``x`` and ``y`` from a ``.npz`` or ``.pt`` file, checked.

Apart from ``arrays.py`` (the DataModule) so that the config's resolvers (``arrays_dims``,
``arrays_classes``, ``arrays_target_size``) can read a file's shape and classes with torch
alone: a bad file is refused before Lightning and torchvision are imported (~1.5 s, not ~5 s).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from descentlab.errors import DataError, DataNotFoundError, ParameterError

SUFFIXES = (".npz", ".pt")


def load_arrays(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x float32, y)`` from FILE, y long (labels) or float32 (real values); every problem
    is a one-line error naming the file."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ParameterError(
            "path",
            str(path),
            "a .npz file (arrays x, y) or a .pt file (a dict of tensors x, y)",
        )
    if path.is_dir():
        raise DataError(f"data.path={str(path)!r} is a folder, not a {path.suffix} file")
    if not path.is_file():
        raise DataNotFoundError(f"data.path={str(path)!r} does not exist")
    try:
        if path.suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as arrays:  # no pickles: loading runs no code
                content = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is the file's fault
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "weights_only" in str(err):  # torch advises an unsafe load: say what to do instead
            first = (
                "it holds objects other than tensors; save a dict of tensors {'x': ..., 'y': ...}"
            )
        raise DataError(f"{path}: cannot be read as {path.suffix} ({first})") from None
    if not isinstance(content, dict) or not {"x", "y"} <= set(content):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DataError(f"{path}: needs arrays named x and y, found {found}")
    x, y = torch.as_tensor(content["x"]), torch.as_tensor(content["y"])
    if y.dtype == torch.bool:
        y = y.long()  # True/False: the labels 1/0
    if y.is_complex() or y.ndim == 0 or (not y.is_floating_point() and y.ndim != 1):
        raise DataError(
            f"{path}: y must be integer labels (N,) or real values (N, ...), got {y.dtype} of "
            f"shape {tuple(y.shape)}"
        )
    if x.ndim < 2 or len(x) != len(y):
        raise DataError(
            f"{path}: x must have one row per target: x has shape {tuple(x.shape)}, y has {len(y)} rows"
        )
    if len(y) == 0:
        raise DataError(f"{path}: x and y hold no rows")
    if y.is_floating_point():
        return _finite_features(path, x), y.float()
    if int(y.min()) < 0:
        raise DataError(f"{path}: labels must be class ids >= 0, found {int(y.min())}")
    if int(y.max()) + 1 > len(y):
        # the classes are 0..max: more of them than rows leaves most without one sample (and
        # a label of 10**9 built a model with 10**9 outputs until the memory ran out)
        raise DataError(
            f"{path}: labels must be class ids 0..K-1; the largest, {int(y.max())}, makes more "
            f"classes than the file has rows ({len(y)})"
        )
    return _finite_features(path, x), y.long()


def _finite_features(path: Path, x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    finite = torch.isfinite(x).flatten(1).all(1)
    if not bool(finite.all()):  # else the run stops at its first step with a NaN loss
        rows = (~finite).nonzero().flatten()
        raise DataError(
            f"{path}: x holds NaN or inf in {len(rows)} rows (the first: row {int(rows[0])})"
        )
    return x


@lru_cache(maxsize=8)
def _info(path: str, mtime_ns: int) -> tuple[list[int], int | None, int | None]:
    x, y = load_arrays(path)
    if y.is_floating_point():  # real values: no classes; k values per sample
        return list(x.shape[1:]), None, int(y[0].numel())
    return list(x.shape[1:]), int(y.max()) + 1, None


def array_info(path: str) -> tuple[list[int], int | None, int | None]:
    """``(dims, num_classes, target_size)`` of FILE, for the config (read once per file
    version): ``num_classes`` for labels, ``target_size`` (values per sample) for real values."""
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        mtime = 0  # load_arrays reports the missing file
    return _info(str(path), mtime)
