"""Train, load and predict from Python (notebooks, scripts) with the same configs as ``python train.py``.

from descentlab.api import load, predict, train
metrics, run_dir = train(["optimizer=sgd", "trainer.max_epochs=5"], "logs/notebook/sgd")
model = load(run_dir)                 # the trained LightningModule (the weights the run kept)
probabilities = predict(model, x)     # Lightning's predict_step on new inputs
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from descentlab.config import CONFIG_DIR


def find_config_dir(config_dir: str | Path | None = None) -> Path:
    """The configs to compose: ``config_dir`` if given; else the nearest ``configs/`` (with a
    ``train.yaml``) in the working directory or above it, as ``python train.py`` run there
    would use (a notebook in ``notebooks/`` finds the checkout's); else the configs of the
    checkout descentlab was installed from."""
    if config_dir is not None:
        path = Path(config_dir).resolve()
        if not (path / "train.yaml").is_file():
            from descentlab.errors import ConfigError

            raise ConfigError("config_dir", str(config_dir), "a directory holding train.yaml")
        return path
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "configs" / "train.yaml").is_file():
            return folder / "configs"
    return CONFIG_DIR


def compose(
    overrides: list[str] | tuple[str, ...] = (),
    output_dir: str | Path = "logs/api",
    config_dir: str | Path | None = None,
) -> DictConfig:
    """The config ``python train.py OVERRIDES hydra.run.dir=OUTPUT_DIR`` would run, from
    :func:`find_config_dir`'s configs."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(find_config_dir(config_dir)), version_base="1.3"):
        cfg = hydra_compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # lets ${hydra:...} resolve
    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(output_dir).resolve())
        del cfg["hydra"]
    return cfg


def train(
    overrides: list[str] | tuple[str, ...] = (),
    output_dir: str | Path = "logs/api",
    quiet: bool = False,
    config_dir: str | Path | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run one training as ``train.py`` would; return its final metrics and run dir.

    The configs are those of the working directory's checkout (or ``config_dir``), see
    :func:`find_config_dir`: ``train(["+experiment=my_idea"])`` finds the user's own experiment.

    ``quiet=True`` keeps the run's printed output (the final table, Lightning's info
    lines) out of the caller's output, e.g. a notebook's cells; warnings still show.
    """
    from descentlab.run.train import run

    cfg = compose(overrides, output_dir, config_dir)
    if not quiet:
        return run(cfg), Path(cfg.paths.output_dir)
    import lightning.pytorch  # noqa: F401 - sets its loggers' levels on import, before ours

    lightning_logs = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [log.level for log in lightning_logs]
    try:
        for log in lightning_logs:
            log.setLevel(logging.WARNING)
        with _silenced():
            return run(cfg), Path(cfg.paths.output_dir)
    finally:
        for log, level in zip(lightning_logs, levels, strict=True):
            log.setLevel(level)


def _silenced():
    """Swallow printed output; in Jupyter also rich's output, which it sends as displays."""
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        from IPython.utils.capture import capture_output

        return capture_output(stdout=True, stderr=False, display=True)
    return contextlib.redirect_stdout(io.StringIO())


def load(path: str | Path, overrides: list[str] | tuple[str, ...] | None = None):
    """The trained module of a run dir (its ``model.pt``), a checkpoint or a ``model.pt``.

    The module is rebuilt from the model config its checkpoints record; ``overrides``
    (``train.py``'s) give the model config of a ``model.pt`` that has no checkpoint beside
    it. The module is returned in eval mode, on the CPU.
    """
    from descentlab.storage.loading import load as load_module

    model_cfg = compose(overrides).model if overrides is not None else None
    module = load_module(path, model_cfg=model_cfg)
    return module.eval()


def predict(module, inputs, batch_size: int = 1024, accelerator: str = "cpu"):
    """What the module's task predicts for ``inputs`` (N, *input_shape), through Lightning's
    ``predict_step``: class probabilities, values, or the probability of class 1.

    Any real dtype is cast to the module's (numpy's default float64, integers); anything else
    (complex, bool, strings) is refused in one line naming the dtype."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from descentlab.errors import DataError

    try:
        inputs = torch.as_tensor(inputs)
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"predict: inputs cannot be read as a tensor ({err})") from None
    if inputs.is_complex() or inputs.dtype == torch.bool:
        raise DataError(f"predict: inputs of dtype {inputs.dtype}: give real numbers (N, ...)")
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    inputs = inputs.to(dtype)

    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    loader = DataLoader(TensorDataset(inputs), batch_size=batch_size)
    return torch.cat(trainer.predict(module, loader))
