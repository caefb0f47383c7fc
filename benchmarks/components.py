"""What each default convenience of ``python train.py`` costs per epoch.

Runs the default configuration in this one process with every default callback and the
logger removed ("stripped"), then with each one added back alone, then all of them
("defaults"). Per-epoch seconds are slopes between runs of two lengths, so set-up and
the final test cancel; the configurations alternate within each repeat so that a
machine's drifts hit all of them alike.

    python benchmarks/components.py                 # MNIST-sized fake files, ~3 min on 2 cores
    python benchmarks/components.py --data digits

``--hooks`` instead profiles one run of the defaults with Lightning's ``SimpleProfiler`` and
sums the time each callback spent in its hooks: per epoch, per step, and as a share of
the epoch. (Rich draws the bar in a thread of its own: that cost shows in the slopes, not
in the hooks.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

CALLBACKS = (
    "model_checkpoint",
    "last_checkpoint",
    "early_stopping",
    "stop_on_divergence",
    "progress_bar",
)
STRIPPED = [
    *(f"callbacks.{name}=null" for name in CALLBACKS),
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test=false",
]


def without(overrides: list[str], *removed: str) -> list[str]:
    return [o for o in overrides if not any(o.startswith(r) for r in removed)]


def configurations() -> dict[str, list[str]]:
    """Stripped, stripped + one component, and the defaults (what a user runs)."""
    configs = {"stripped": STRIPPED}
    for name in CALLBACKS:
        extra = without(STRIPPED, f"callbacks.{name}=")
        if name == "progress_bar":
            extra = without(extra, "trainer.enable_progress_bar")
        configs[f"+ {name}"] = extra
    configs["+ csv logger"] = without(STRIPPED, "logger=")
    configs["defaults"] = ["test=false"]
    return configs


def epoch_slopes(data: list[str], epochs: tuple[int, int], repeats: int) -> dict[str, list[float]]:
    from descentlab.api import train

    configs = configurations()
    slopes: dict[str, list[float]] = {name: [] for name in configs}
    e1, e2 = epochs
    # warm-up: the first run in a process pays the imports, which would distort its slope
    with contextlib.redirect_stdout(io.StringIO()):
        train(
            [*data, *configs["defaults"], "trainer.max_epochs=1"],
            tempfile.mkdtemp(prefix="bench-components-"),
        )
    for _ in range(repeats):
        for name, overrides in configs.items():
            seconds = {}
            for e in (e1, e2):
                start = time.perf_counter()
                # rich draws as in a terminal (TTY_COMPATIBLE=1): its cost is counted
                with contextlib.redirect_stdout(io.StringIO()):
                    train(
                        [*data, *overrides, f"trainer.max_epochs={e}"],
                        tempfile.mkdtemp(prefix="bench-components-"),
                    )
                seconds[e] = time.perf_counter() - start
            slopes[name].append((seconds[e2] - seconds[e1]) / (e2 - e1))
    return slopes


def hook_profile(data: list[str], epochs: int) -> dict[str, dict[str, float]]:
    """Seconds per epoch and per step that each callback (and the training step) spent in
    its hooks, from Lightning's ``SimpleProfiler`` report of one run of the defaults."""
    import re

    from descentlab.api import train

    out = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    profiler = [
        "+trainer.profiler._target_=lightning.pytorch.profilers.SimpleProfiler",
        f"+trainer.profiler.dirpath={out}",
        "+trainer.profiler.filename=profile",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        metrics, _ = train(
            [
                *data,
                *profiler,
                "test=false",
                f"trainer.max_epochs={epochs}",
                "callbacks.early_stopping.patience=100000",
            ],
            out / "run",
        )
    steps = metrics["global_step"]
    totals: dict[str, float] = {}
    for line in (out / "fit-profile.txt").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("["):
            continue
        found = re.match(r"\[([^\]]+)\]([^{.]*)", cells[0])
        if found is None:
            continue
        kind, name = found.groups()
        if kind == "Callback":
            key = name
        elif cells[0].startswith("[Strategy]") or "optimizer_step" in cells[0]:
            continue  # inside run_training_batch: counted there
        else:
            key = f"{kind}.{cells[0].split('.')[-1]}"
        totals[key] = totals.get(key, 0.0) + float(cells[3])
    for line in (out / "fit-profile.txt").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("run_training_epoch", "run_training_batch"):
            totals[cells[0]] = float(cells[3])
    return {
        key: {"s_per_epoch": total / epochs, "us_per_step": 1e6 * total / steps}
        for key, total in sorted(totals.items(), key=lambda kv: -kv[1])
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/components.py")
    parser.add_argument("--data", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs=2, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--hooks", action="store_true", help="per-callback hook times instead")
    args = parser.parse_args(argv)
    os.environ.setdefault("TTY_COMPATIBLE", "1")

    if args.data == "mnist":
        sys.path.insert(0, str(Path(__file__).parent))
        from bench import ensure_mnist

        data_dir = ensure_mnist(
            Path(tempfile.gettempdir()) / "descentlab-bench-mnist", 60_000, 10_000
        )
        data = ["data=mnist", f"paths.data_dir={data_dir}", "trainer=cpu"]
        epochs = tuple(args.epochs or (1, 3))
    else:
        data = ["trainer=cpu"]
        epochs = tuple(args.epochs or (5, 45))
    if args.hooks:
        profile = hook_profile(data, epochs[1])
        epoch = profile["run_training_epoch"]["s_per_epoch"]
        print(f"{'component (hooks)':36s} {'s/epoch':>8s} {'us/step':>9s} {'% epoch':>8s}")
        for name, cost in list(profile.items())[:16]:  # the costliest; --out has them all
            share = 100 * cost["s_per_epoch"] / epoch
            print(f"{name:36s} {cost['s_per_epoch']:8.4f} {cost['us_per_step']:9.1f} {share:8.2f}")
        if args.out:
            args.out.write_text(json.dumps(profile, indent=2))
        return 0
    slopes = epoch_slopes(data, epochs, args.repeats)
    median = {k: statistics.median(v) for k, v in slopes.items()}
    base = median["stripped"]
    print(f"{'configuration':24s} {'s/epoch':>8s} {'+ s/epoch':>10s} {'x stripped':>10s}")
    for name, value in median.items():
        print(f"{name:24s} {value:8.3f} {value - base:10.3f} {value / base:10.2f}")
    if args.out:
        args.out.write_text(
            json.dumps({"data": args.data, "epochs": epochs, "slopes": slopes}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
