"""``python predict.py ckpt_path=RUN input=PATH``: a trained model's predictions, one row per input.

The model comes from PATH (a run dir, a checkpoint or a run's ``model.pt``, as ``eval.py``);
the inputs from ``input``:

- a folder of images, in any layout (flat, or ``<class>/<image>``): every image file under
  it, preprocessed as the model's training images were at evaluation (resize, centre crop,
  normalization, from the training run's recorded data config);
- a ``.npz``/``.pt`` file with an array ``x`` (N, ...) (``y`` is not needed);
- nothing (``input=null``): the test split of the training run's data (as its checkpoint
  records it), or of the data this command configures (``data=...``).

Its ``metrics.json`` names the predictions file, the rows, and ``run_card``, the ``run.json``
of the run that trained the model. It writes ``predictions.csv`` (or ``.jsonl``:
``output_format=jsonl``) in the run dir: the
input's id (the file's path, or the row), then for a classifier the predicted class by the
training data's names and one probability column per class, for a binary task the
probability of class 1 and the predicted label, for a regression the predicted values.
Batches go through Lightning's ``Trainer.predict`` on the configured trainer (several processes
with ``trainer=ddp_cpu`` / ``trainer=ddp``: each predicts its share, rank 0 merges them in
input order); a ``BasePredictionWriter`` writes each batch as it comes, so the predictions of
a large folder never sit in memory together.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from descentlab.errors import ConfigError, DataError

FORMATS = ("csv", "jsonl")


def recorded(source: str) -> tuple[dict | None, list[str] | None]:
    """The training run's data config and class names, from the checkpoint behind ``source``."""
    from descentlab.storage.loading import run_checkpoint
    from descentlab.torchfile import CLASS_NAMES_KEY, CONFIG_KEY, load_checkpoint

    path = Path(source)
    if path.is_dir():
        path = run_checkpoint(path) or path
    elif path.name == "model.pt":
        path = run_checkpoint(path.parent) or path
    try:
        checkpoint = load_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - a model.pt alone: the command's config describes it
        return None, None
    return (checkpoint.get(CONFIG_KEY) or {}).get("data"), checkpoint.get(CLASS_NAMES_KEY)


def test_split_data(cfg: DictConfig, data_config: dict | None):
    """The data whose test split ``input=null`` predicts: the training run's, as recorded in
    its checkpoint, unless this command configures data itself (``data=...``, ``data.*=``).
    The command's defaults (digits) would not be the data the model was trained on."""
    from hydra.core.hydra_config import HydraConfig

    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    names_data = any(
        str(o).lstrip("+~").split("=", 1)[0].split(".")[0] == "data" for o in overrides
    )
    if data_config and not names_data:
        return OmegaConf.create(data_config)
    return cfg.data


def image_inputs(folder: Path, data_config: dict | None, on_bad_image: str = "error"):
    """``(ids, dataset)`` for every image file under ``folder``, with the evaluation transform
    of the training data (an image-folder run's recorded preprocessing). A file that is not
    an image stops the command in one line naming it, or (``on_bad_image=skip``) is left
    out with a count: it gets no row."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from descentlab.data.image_folder import (
        ImageFiles,
        build_transforms,
        drop_unreadable,
        preprocessing,
    )

    if not data_config or not str(data_config.get("_target_", "")).endswith(
        "ImageFolderDataModule"
    ):
        raise ConfigError(
            "input",
            str(folder),
            "an array file or null: a folder of images needs a model trained on "
            "data=image_folder (its preprocessing is what the images go through)",
        )
    files = sorted(
        str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
    )
    if not files:
        raise DataError(f"input={folder}: no image files ({', '.join(IMG_EXTENSIONS)})")
    if on_bad_image not in ("error", "skip"):
        raise ConfigError("on_bad_image", on_bad_image, "error or skip")
    try:
        files = [path for path, _ in drop_unreadable([(f, -1) for f in files], on_bad_image)]
    except DataError as err:  # the data group's key is not this command's: name ours
        raise DataError(str(err).replace("data.on_bad_image", "on_bad_image")) from None
    if not files:
        raise DataError(f"input={folder}: no readable image file")
    prep = preprocessing(
        data_config.get("arch"),
        data_config.get("weights"),
        data_config.get("image_size"),
        data_config.get("resize_size"),
        data_config.get("mean"),
        data_config.get("std"),
    )
    transform = build_transforms(prep, train=False, crop_scale=None, hflip=False)
    return files, ImageFiles([(f, -1) for f in files], transform)


def array_inputs(path: Path):
    """``(ids, x)`` of an array file's ``x`` (rows 0..N−1)."""
    import torch

    from descentlab.data.array_files import SUFFIXES

    if path.suffix not in SUFFIXES:
        raise ConfigError("input", str(path), "a folder of images, a .npz or .pt file, or null")
    try:
        if path.suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as arrays:
                content = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is the file's fault
        raise DataError(f"input={path}: cannot be read as {path.suffix} ({err})") from None
    if not isinstance(content, dict) or "x" not in content:
        raise DataError(f"input={path}: needs an array named x")
    x = torch.as_tensor(content["x"])
    if x.ndim >= 1 and len(x) == 0:
        raise DataError(f"input={path}: x has no rows (shape {tuple(x.shape)}): nothing to predict")
    if x.is_complex() or x.dtype == torch.bool or x.ndim < 2:
        raise DataError(
            f"input={path}: x must be real numbers (N, ...), got {x.dtype} {tuple(x.shape)}"
        )
    x = x.float()
    finite = torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
    if not finite.all():  # a model gives NaN for them: a row of NaN with some class is no answer
        first = int((~finite).nonzero()[0])
        raise DataError(
            f"input={path}: {int((~finite).sum())} of {len(x)} rows of x hold NaN or infinite "
            f"values (the first: row {first}): nothing can be predicted for them"
        )
    return [str(i) for i in range(len(x))], x


def check_shape(module, sample_shape: tuple[int, ...], where: str) -> None:
    expected = getattr(module.net, "input_shape", None)
    if expected is not None and tuple(expected) != tuple(sample_shape):
        raise DataError(
            f"{where}: inputs of shape {list(sample_shape)}, the model takes {list(expected)} "
            "(it was trained on them)"
        )


def columns(task, class_names: list[str] | None, width: int) -> list[str]:
    """The header after ``id``."""
    if task.name == "classification":
        names = class_names or [str(i) for i in range(width)]
        return ["predicted", *(f"p_{name}" for name in names)]
    if task.name == "binary":
        return ["predicted", "p_1"]
    return ["value"] if width == 1 else [f"value_{i}" for i in range(width)]


def rows(task, prediction, class_names: list[str] | None) -> list[list[Any]]:
    """One row of values per sample (after ``id``)."""
    values = prediction.detach().double().cpu()
    if task.name == "classification":
        names = class_names or [str(i) for i in range(values.shape[1])]
        return [[names[int(p.argmax())], *p.tolist()] for p in values]
    if task.name == "binary":
        labels = class_names or ["0", "1"]
        return [[labels[int(p >= 0.5)], float(p)] for p in values]
    return [[float(v)] if values.ndim == 1 else v.reshape(-1).tolist() for v in values]


class PredictionFile:
    """Write ``predictions.csv`` / ``.jsonl`` batch by batch (a ``BasePredictionWriter``).

    In one process the rows go straight to the file. With several (``trainer=ddp_cpu``,
    ``trainer=ddp``), Lightning's ``DistributedSampler`` gives rank r the inputs r, r + W,
    r + 2W, ... (W processes), padded at the end with inputs from the start so that every rank
    has as many: each rank writes its rows with their input index to its own part file,
    dropping the padding (an index below the one before it), and rank 0 merges the parts in
    input order once all ranks are done (the parts are each sorted: a streaming merge).
    """

    @staticmethod
    def writer(path: Path, output_format: str, ids: list[str], task, class_names, width: int):
        from lightning.pytorch.callbacks import BasePredictionWriter

        header = ["id", *columns(task, class_names, width)]

        def part(rank: int) -> Path:
            return path.with_name(f"{path.name}.rank{rank}.part")

        class Writer(BasePredictionWriter):
            def __init__(self):
                super().__init__(write_interval="batch")
                self.file = None
                self.count = 0
                self.last = -1
                self.world = 1

            def on_predict_start(self, trainer, pl_module):
                self.world = trainer.world_size
                if self.world > 1:
                    self.file = open(part(trainer.global_rank), "w")  # noqa: SIM115 - closed at end
                    return
                self.file = open(path, "w", newline="")  # noqa: SIM115 - closed at predict end
                self.start(self.file)

            def start(self, file):
                if output_format == "csv":
                    self.csv = csv.writer(file)
                    self.csv.writerow(header)

            def emit(self, file, record):
                if output_format == "csv":
                    self.csv.writerow(record)
                else:
                    file.write(json.dumps(dict(zip(header, record, strict=True))) + "\n")
                self.count += 1

            def write_on_batch_end(
                self,
                trainer,
                pl_module,
                prediction,
                batch_indices,
                batch,
                batch_idx,
                dataloader_idx=0,
            ):
                indices = batch_indices or range(self.count, self.count + len(prediction))
                for index, row in zip(indices, rows(task, prediction, class_names), strict=True):
                    if self.world == 1:
                        self.emit(self.file, [ids[index], *row])
                    elif index > self.last:  # else the sampler's padding: a row already written
                        self.last = index
                        self.file.write(json.dumps([index, row]) + "\n")

            def on_predict_end(self, trainer, pl_module):
                self.file.close()
                if self.world == 1:
                    return
                trainer.strategy.barrier("predictions written")
                if trainer.is_global_zero:
                    self.merge()
                trainer.strategy.barrier("predictions merged")

            def merge(self):
                import heapq

                parts = [open(part(rank)) for rank in range(self.world)]  # noqa: SIM115
                try:
                    with open(path, "w", newline="") as out:
                        self.start(out)
                        records = (map(json.loads, p) for p in parts)
                        for index, row in heapq.merge(*records, key=lambda r: r[0]):
                            self.emit(out, [ids[index], *row])
                finally:
                    for p in parts:
                        p.close()
                for rank in range(self.world):
                    part(rank).unlink()

        return Writer()


def predict_devices(trainer_cfg: DictConfig, inputs: int) -> int | list | str:
    """``trainer.devices`` when it names several (``trainer=ddp_cpu``: 2), else 1: predicting
    on every GPU of a machine is asked for, not the default (``devices: auto``). Never more
    processes than inputs (each process needs one: 1 input over 2 ranks stops Lightning's
    sampler)."""
    devices = trainer_cfg.get("devices", 1)
    if str(devices) in ("auto", "-1", "None"):
        return 1
    if isinstance(devices, int) and devices > inputs:
        return max(1, inputs)
    return devices


def run(cfg: DictConfig) -> dict[str, Any]:
    """Predict with the model of ``cfg.ckpt_path`` on ``cfg.input``; write the predictions."""
    from descentlab.run.evaluate import check_source

    source = check_source(cfg.ckpt_path)
    output_format = cfg.get("output_format", "csv")
    if output_format not in FORMATS:
        raise ConfigError("output_format", output_format, " or ".join(FORMATS))
    from descentlab.config.validate import validate

    checked = cfg.copy()
    with open_dict(checked):
        checked.ckpt_path = None
    validate(checked)
    import lightning as L
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader, TensorDataset

    from descentlab.run.build import building
    from descentlab.run.console import tidy_console
    from descentlab.run.outputs import print_table, write_metrics
    from descentlab.storage.loading import load

    tidy_console()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = load(source, model_cfg=cfg.model)
    data_config, class_names = recorded(source)
    batch_size = int(cfg.data.get("eval_batch_size") or 256)
    given = cfg.get("input")
    if given is None:
        with building("data"):
            datamodule = instantiate(test_split_data(cfg, data_config))
        datamodule.setup("test")
        if not hasattr(datamodule, "splits"):
            raise ConfigError(
                "input",
                None,
                "a folder or array file for this data (its test split is not in memory)",
            )
        x = datamodule.splits["test"][0]
        ids, dataset, shape = [str(i) for i in range(len(x))], TensorDataset(x), tuple(x.shape[1:])
        where = "the test split"
    else:
        path = Path(str(given))
        if not path.exists():
            raise ConfigError("input", str(path), "an existing folder of images or array file")
        where = f"input={path}"
        if path.is_dir():
            ids, dataset = image_inputs(path, data_config, cfg.get("on_bad_image", "error"))
            shape = tuple(dataset[0][0].shape)
        else:
            ids, x = array_inputs(path)
            dataset, shape = TensorDataset(x), tuple(x.shape[1:])
    check_shape(module, shape, where)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / f"predictions.{output_format}"
    task = module.task
    width = task.outputs or 1
    writer = PredictionFile.writer(out, output_format, ids, task, class_names, width)
    # the configured trainer (its accelerator, precision, strategy: trainer=ddp_cpu predicts in
    # 2 processes), without what only training uses
    trainer = instantiate(
        cfg.trainer,
        devices=predict_devices(cfg.trainer, inputs=len(dataset)),
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    loader = DataLoader(dataset, batch_size=batch_size)
    trainer.predict(module, loader, return_predictions=False)
    if not trainer.is_global_zero:
        return {"status": "completed"}  # rank 0 writes the summary
    summary = {
        "predictions": str(out),
        "rows": writer.count,
        "processes": trainer.world_size,
        "task": task.name,
        "ckpt_path": source,
        "input": str(given) if given is not None else "test split",
        "status": "completed",
    }
    from descentlab.run.card import card_of

    if (run_card := card_of(source)) is not None:  # the card of the run that trained it
        summary["run_card"] = run_card
    write_metrics(output_dir / "metrics.json", summary)
    print_table(summary, output_dir / "metrics.json", title=f"predictions of {source}")
    return summary


def main(cfg: DictConfig) -> None:
    """Hydra task: predict, and end as ``train.py`` does (:func:`descentlab.run.exits.run_task`)."""
    from descentlab.run.exits import run_task

    run_task(lambda: run(cfg), cfg, metric=None)


__all__ = ["main", "run"]
_ = OmegaConf  # the config types used in annotations
