"""Write small datasets in torchvision's own on-disk formats.

Used where the real files cannot be downloaded (tests, benchmarks on offline machines):
torchvision's real dataset classes then read these files exactly as they read the
originals. The images are random unless given; the labels cycle through the classes.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    return labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format (LeCun): magic 0x0000 08 <ndim>, big-endian int32 sizes, raw uint8 data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist_like(
    root: str | Path,
    name: str = "MNIST",
    n_train: int = 600,
    n_test: int = 100,
    seed: int = 0,
    label_noise: float = 0.0,
) -> Path:
    """Write ``root/<name>/raw/*-idx?-ubyte`` as torchvision's MNIST/FashionMNIST read them.

    ``label_noise``: this fraction of the labels is replaced by random ones after the
    images are drawn (the pattern then no longer determines the label: a realistic loss).
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for train, n in ((True, n_train), (False, n_test)):
        images_file, labels_file = MNIST_FILES[train]
        labels = _labels(n, 10, rng)
        # Class-dependent images so that a model can learn something from them.
        images = rng.integers(0, 64, size=(n, 28, 28), dtype=np.uint8)
        for c in range(10):
            images[labels == c, 2 * c : 2 * c + 6, 4:24] = 255
        noisy = rng.random(n) < label_noise
        labels[noisy] = rng.integers(0, 10, size=int(noisy.sum()), dtype=np.uint8)
        write_idx(raw / images_file, images)
        write_idx(raw / labels_file, labels)
    return raw


def write_cifar10(
    root: str | Path, n_train: int = 500, n_test: int = 100, seed: int = 0
) -> dict[str, str]:
    """Write ``root/cifar-10-batches-py`` (pickled batches); return ``{file: md5}``.

    torchvision checks each file's MD5 against the official ones; a caller using these
    files must register the returned checksums (``CIFAR10.train_list``/``test_list``).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = max(1, n_train // 5)
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
    for name, n in batches.items():
        labels = _labels(n, 10, rng)
        images = rng.integers(0, 64, size=(n, 3, 32, 32), dtype=np.uint8)
        for c in range(10):
            images[labels == c, c % 3, 3 * c : 3 * c + 4, :] = 255
        entry = {"data": images.reshape(n, -1), "labels": labels.tolist(), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(entry))
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def register_cifar10_checksums(checksums: dict[str, str]) -> None:
    """Make torchvision's CIFAR10 accept files written by :func:`write_cifar10`."""
    from torchvision.datasets import CIFAR10

    CIFAR10.train_list = [[f"data_batch_{i}", checksums[f"data_batch_{i}"]] for i in range(1, 6)]
    CIFAR10.test_list = [["test_batch", checksums["test_batch"]]]
    CIFAR10.meta = {**CIFAR10.meta, "md5": checksums["batches.meta"]}


def write_image_folder(
    root: str | Path,
    per_class: int | None = None,
    size: int = 32,
    classes: list[int] | None = None,
    splits: tuple[str, ...] = (),
    suffix: str = ".png",
    seed: int = 0,
) -> Path:
    """Write scikit-learn's digits as 3-channel image files in ImageFolder layout.

    ``root/<digit>/<n><suffix>`` (or ``root/<split>/<digit>/...`` for each of ``splits``,
    dealt round-robin), each 8x8 digit scaled up to ``size`` px and coloured by a random
    tint so that the three channels differ. ``per_class``: at most this many images per
    digit (``None``: all ~180). Real PNG/JPEG files, written by PIL, read back by
    torchvision's ImageFolder loader exactly as a user's photos would be.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    root = Path(root)
    seen: dict[int, int] = {}
    for image, label in zip(digits.images, digits.target, strict=True):
        label = int(label)
        if classes is not None and label not in classes:
            continue
        n = seen.get(label, 0)
        if per_class is not None and n >= per_class:
            continue
        seen[label] = n + 1
        folder = root / (splits[n % len(splits)] if splits else "") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray((image * (255 / 16)).astype(np.uint8)).resize(
            (size, size), Image.BILINEAR
        )
        tint = rng.uniform(0.6, 1.0, size=3)
        rgb = (np.asarray(gray, dtype=np.float32)[..., None] * tint).astype(np.uint8)
        Image.fromarray(rgb, mode="RGB").save(folder / f"{n}{suffix}")
    return root
