"""Run dirs as ``train.py`` writes them (metrics.json, history.json, .hydra/), without training:
for the report's tests."""

from __future__ import annotations

import json

import numpy as np
import yaml

METRICS = ("loss", "acc")
DEFAULT_OPTIMIZER = "torch_adam"  # configs/train.yaml's default group choice


def write_run(
    path,
    *,
    seed: int,
    overrides: list[str],
    final: dict[str, float],
    epochs: int = 4,
    status: str = "completed",
    rng: np.random.Generator | None = None,
    curves: dict[str, list[float]] | None = None,
    dropout: float = 0.0,
):
    """One run dir as ``train.py`` writes it: ``final`` holds train/val/test loss and acc."""
    rng = rng or np.random.default_rng(seed)
    path.mkdir(parents=True)
    optimizer = next(
        (o.split("=", 1)[1] for o in overrides if o.startswith("optimizer=")), DEFAULT_OPTIMIZER
    )
    if curves is None:
        curves = {
            f"{stage}/{name}": list(rng.uniform(0.1, 1.0, epochs))
            for stage in ("train", "val")
            for name in METRICS
        }
    history = {
        str(e): {k: v[e] for k, v in sorted(curves.items()) if e < len(v)}
        for e in range(max(map(len, curves.values())))
    }
    (path / "history.json").write_text(json.dumps({"epochs": history}, indent=2))
    (path / "metrics.json").write_text(
        json.dumps(
            {
                "best_epoch": epochs - 1,
                "ckpt_path": str(path / "checkpoints" / "best.ckpt"),
                "epochs": epochs,
                "monitor": "val/loss",
                "objective": "val/acc",
                "objective_mode": "max",
                "status": status,
                "task": "classification",
                **({"reason": "loss became nan"} if status == "diverged" else {}),
                **final,
            },
            indent=2,
            sort_keys=True,
        )
    )
    hydra = path / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {
        "data": {"_target_": "descentlab.data.DigitsDataModule", "seed": "${seed}"},
        "model": {"net": {"hidden_dims": [256, 128], "dropout": dropout}},
        "optimizer": {"_target_": f"descentlab.optim.{optimizer}", "lr": 0.01},
        "seed": 12345,
    }
    (hydra / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    choices = {"data": "digits", "model": "mlp", "optimizer": optimizer, "hydra/launcher": "basic"}
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))


def final_of(rng) -> dict[str, float]:
    return {
        f"{s}/{n}": float(rng.uniform(0.1, 1.0)) for s in ("train", "val", "test") for n in METRICS
    }


def sweep(tmp_path, groups: dict[str, list[int]], rng, **kwargs):
    """A multirun dir: for each optimizer its seeds; {(optimizer, seed): final metrics}."""
    finals, job = {}, 0
    for optimizer, seeds in groups.items():
        for seed in seeds:
            finals[optimizer, seed] = final_of(rng)
            overrides = [f"optimizer={optimizer}", f"seed={seed}", "trainer.max_epochs=4"]
            write_run(
                tmp_path / str(job),
                seed=seed,
                overrides=overrides,
                final=finals[optimizer, seed],
                rng=rng,
                **kwargs,
            )
            job += 1
    return finals
