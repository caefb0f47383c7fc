"""``python eval.py ckpt_path=PATH``: test a trained model on the configured data, write ``metrics.json``.

The model comes from PATH (see :func:`descentlab.storage.loading.load`), the data, trainer and
seed from the config, so ``data=...`` tests the same model on other data. ``metrics.json``
holds ``test/*``, ``ckpt_path`` (what was tested), ``status`` and ``run_card``, the
``run.json`` of the run that trained the model (when there is one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from descentlab.errors import ConfigError


def check_source(ckpt_path: Any) -> str:
    """PATH must be a run dir, or a file (local or any fsspec URL)."""
    from descentlab.torchfile import exists

    allowed = "a training checkpoint (.ckpt), a run's model.pt, or a run dir"
    if ckpt_path in (None, "", "last") or not (Path(str(ckpt_path)).is_dir() or exists(ckpt_path)):
        raise ConfigError("ckpt_path", ckpt_path, allowed)
    return str(ckpt_path)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load the model of ``cfg.ckpt_path``, test it on ``cfg.data``; return (and write) the metrics."""
    source = check_source(cfg.ckpt_path)
    from descentlab.config.validate import validate

    checked = cfg.copy()
    with open_dict(checked):
        checked.ckpt_path = None  # not a resume: validate the rest as train.py would
    validate(checked)
    import lightning as L
    from hydra.utils import instantiate

    from descentlab.run.build import building
    from descentlab.run.card import card_of
    from descentlab.run.console import tidy_console
    from descentlab.run.outputs import print_table, scalar, task_fields, write_metrics
    from descentlab.storage.loading import load

    tidy_console()  # Lightning's info lines once, no advertisements (as train.py)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    with building("data"):
        datamodule = instantiate(cfg.data)
    module = load(source, model_cfg=cfg.model)
    task = module.task  # the task the model was trained on, whatever this command's task= says
    task.check_data(datamodule)
    given = task.data_outputs(datamodule)
    if task.outputs is not None and given != task.outputs:
        unit = "classes" if task.targets == "classes" else "target values"
        raise ConfigError(
            "data",
            f"{given} {unit}",
            f"data with the model's {task.outputs} {unit} (it was trained on them)",
        )
    expected, given = getattr(module.net, "input_shape", None), getattr(datamodule, "dims", None)
    if expected is not None and given is not None and list(expected) != list(given):
        # found by a hostile pass: it was a matmul traceback from the first test batch
        raise ConfigError(
            "data",
            f"inputs of shape {list(given)}",
            f"data with the model's input shape {list(expected)} (it was trained on it)",
        )
    with building("trainer"):
        trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    datamodule.setup("test")
    from descentlab.run.build import check_targets

    check_targets(module, datamodule)
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {k: scalar(v) for k, v in (results[0] if results else {}).items()}
    metrics.update(ckpt_path=source, status="completed", **task_fields(module))
    if (run_card := card_of(source)) is not None:  # the card of the run that trained it
        metrics["run_card"] = run_card
    if trainer.is_global_zero:
        output = Path(cfg.paths.output_dir) / "metrics.json"
        write_metrics(output, metrics)
        print_table(metrics, output, title=f"test metrics of {source}")
    return metrics


def main(cfg: DictConfig) -> float | None:
    """Hydra task: evaluate, and end as ``train.py`` does (:func:`descentlab.run.exits.run_task`)."""
    from descentlab.run.exits import run_task

    def tested_objective(metrics: dict[str, Any]) -> str:
        """The test value of the trained task's objective (test/acc for a classifier)."""
        return "test/" + str(metrics.get("objective", "val/acc")).split("/", 1)[-1]

    return run_task(lambda: run(cfg), cfg, metric=tested_objective)
