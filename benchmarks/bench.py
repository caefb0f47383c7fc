"""``make bench``: how much descentlab costs over a hand-written loop, and how fast it is.

Every comparison runs all of its sides in this one benchmark run, alternating, and
reports the ratio of medians (the framework-overhead items have three sides: train.py,
a hand-written loop, and a bare Lightning Trainer). Per-epoch costs are slopes, (T(E2) − T(E1)) / (E2 − E1), from runs
of two lengths, so start-up cancels. Results: a table on stdout and ``bench.json``
(machine, versions, every figure with min/median/max over repeats).

    make bench                                  # = python benchmarks/bench.py: CPU, minutes on 2 cores
    python benchmarks/bench.py --device cuda    # adds the GPU figures
    python benchmarks/bench.py --tiny           # seconds: keeps the benchmark working (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ceiling  # benchmarks/ceiling.py: the compute-bound workload

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def summary(values: list[float]) -> dict:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
    }


def timed(cmd: list[str], env: dict | None = None) -> float:
    # TTY_COMPATIBLE=1: rich draws the progress bar as in a terminal, so its cost counts
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TTY_COMPATIBLE": "1", **(env or {})}
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


# ----------------------------------------------------------------- the hand-written loop
def _data_and_network(data: str, data_dir: str, device: str, hidden: list[int]):
    """The tensors and the MLP both baselines train: what train.py trains, without it."""
    import torch

    from descentlab.data import DigitsDataModule, MNISTDataModule
    from descentlab.models.mlp import MLP

    # Importing Lightning (for our data module) sets this; a hand-written loop never
    # imports Lightning, so it never pays for the NVML probe (see descentlab.run.runtime).
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as train.py does (flush_denormal: true)
    dm = DigitsDataModule() if data == "digits" else MNISTDataModule(data_dir=data_dir)
    dm.setup()
    train, val = (tuple(t.to(device) for t in dm.splits[s]) for s in ("train", "val"))
    # the network train.py builds (model.net), as a researcher would write it: an nn.Sequential
    model = MLP(tuple(train[0].shape[1:]), 10, hidden_dims=hidden, activation="relu")
    return train, val, model.to(device)


def raw_loop(
    data: str, data_dir: str, epochs: int, batch_size: int, device: str, hidden: list[int]
) -> None:
    """What a researcher writes without a framework: the same MLP, data, batch size and
    Adam, with a validation pass (loss and accuracy) after every epoch."""
    import torch
    from torch import nn

    (x, y), (xv, yv), model = _data_and_network(data, data_dir, device, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), device=device).split(batch_size):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(xv[i : i + 1024]) for i in range(0, len(xv), 1024)])
            val_loss = nn.functional.cross_entropy(logits, yv).item()
            val_acc = (logits.argmax(1) == yv).float().mean().item()
    print(f"val_loss={val_loss:.4f} val_acc={val_acc:.4f}")


def bare_lightning(
    data: str, data_dir: str, epochs: int, batch_size: int, device: str, hidden: list[int]
) -> None:
    """The least a Lightning user writes: the same loop as :func:`raw_loop` driven by a
    bare ``Trainer`` (no callbacks, loggers, checkpoints or metrics) over the same
    in-memory batches. What it costs over the raw loop is Lightning's own per-step and
    per-epoch machinery: the floor for any template built on Lightning's Trainer."""
    import lightning as L
    import torch
    from torch import nn

    from descentlab.data.tensor_data import TensorBatches

    (x, y), (xv, yv), model = _data_and_network(data, data_dir, device, hidden)

    class Bare(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            logits = self.net(batch[0])
            return nn.functional.cross_entropy(logits, batch[1]), (
                logits.argmax(1) == batch[1]
            ).sum()

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Bare(), TensorBatches(x, y, batch_size, shuffle=True), TensorBatches(xv, yv, 1024))


# What a user removes to strip train.py down to training itself: every default callback
# (checkpoints, early stopping, divergence guard, progress bar), the logger, the summary.
STRIPPED = [
    "callbacks=none",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test=false",
]


def stripped_cmd(
    data: str, data_dir: str, epochs: int, batch_size: int, device: str, hidden: list[int]
) -> list[str]:
    """``python train.py`` with its conveniences removed: the framework's own floor."""
    return [*_train_cmd(data, data_dir, epochs, batch_size, device, hidden), *STRIPPED]


def defaults_cmd(
    data: str, data_dir: str, epochs: int, batch_size: int, device: str, hidden: list[int]
) -> list[str]:
    """``python train.py`` as a user runs it: best + last checkpoints, early stopping, the
    divergence guard, the progress bar, the CSV logger and the final test. Only patience is
    raised, so that early stopping (which still runs every epoch) cannot end a timed run early;
    the bar draws as in a terminal (``TTY_COMPATIBLE=1`` in :func:`timed`)."""
    return [
        *_train_cmd(data, data_dir, epochs, batch_size, device, hidden),
        "callbacks.early_stopping.patience=100000",
    ]


def _train_cmd(
    data: str, data_dir: str, epochs: int, batch_size: int, device: str, hidden: list[int]
) -> list[str]:
    trainer = "gpu" if device == "cuda" else "cpu"
    return [
        sys.executable,
        str(ROOT / "train.py"),
        f"data={data}",
        f"paths.data_dir={data_dir}",
        f"trainer={trainer}",
        f"trainer.max_epochs={epochs}",
        f"data.batch_size={batch_size}",
        f"model.net.hidden_dims=[{','.join(map(str, hidden))}]",
        f"hydra.run.dir={tempfile.mkdtemp(prefix='bench-')}",
    ]


def baseline_cmd(loop: str):
    """The command that runs one baseline loop (``raw`` or ``bare``) in a fresh process."""

    def command(
        data: str, data_dir: str, epochs: int, batch_size: int, device: str, hidden: list[int]
    ) -> list[str]:
        return [
            sys.executable,
            str(Path(__file__).resolve()),
            "baseline",
            "--loop",
            loop,
            "--data",
            data,
            "--data-dir",
            data_dir,
            "--epochs",
            str(epochs),
            "--batch-size",
            str(batch_size),
            "--device",
            device,
            "--hidden",
            ",".join(map(str, hidden)),
        ]

    return command


raw_cmd, bare_cmd = baseline_cmd("raw"), baseline_cmd("bare")


def run_baseline(argv: list[str]) -> int:
    """``bench.py baseline --loop raw|bare ...``: one timed side of :func:`epoch_overhead`."""
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py baseline")
    parser.add_argument("--loop", choices=["raw", "bare"], required=True)
    parser.add_argument("--data", choices=["mnist", "digits"], required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], required=True)
    parser.add_argument("--hidden", required=True, help="e.g. 256,128")
    args = parser.parse_args(argv)
    loop = raw_loop if args.loop == "raw" else bare_lightning
    loop(
        args.data,
        args.data_dir,
        args.epochs,
        args.batch_size,
        args.device,
        [int(h) for h in args.hidden.split(",")],
    )
    return 0


def epoch_overhead(
    name: str,
    data: str,
    data_dir: str,
    epochs: tuple[int, int],
    batch_size: int,
    device: str,
    repeats: int,
    hidden: list[int],
) -> dict:
    """Per-epoch seconds of four sides: the raw loop, a bare Lightning Trainer, ``python
    train.py`` stripped of its conveniences, and ``python train.py`` with its defaults.

    ``ratio`` is stripped / raw loop (what the framework costs), ``defaults_ratio`` defaults /
    raw loop (what a user pays), ``defaults_over_stripped`` what the conveniences add;
    ``lightning_floor`` (bare Trainer / raw loop) is what Lightning itself costs and
    ``over_lightning`` (stripped / bare Trainer) what descentlab adds on top of it."""
    e1, e2 = epochs
    sides = {
        "raw_loop": raw_cmd,
        "bare_lightning": bare_cmd,
        "stripped": stripped_cmd,
        "defaults": defaults_cmd,
    }
    times = {side: {e1: [], e2: []} for side in sides}
    for _ in range(repeats):
        for epochs_ in (e1, e2):  # alternate the sides so drifts hit all of them
            for side, make in sides.items():
                times[side][epochs_].append(
                    timed(make(data, data_dir, epochs_, batch_size, device, hidden))
                )
    slopes = {
        side: [(b - a) / (e2 - e1) for a, b in zip(t[e1], t[e2], strict=True)]
        for side, t in times.items()
    }
    median = {side: statistics.median(v) for side, v in slopes.items()}
    fastest = {side: min(v) for side, v in slopes.items()}
    return {
        "name": name,
        "seconds_per_epoch": {k: summary(v) for k, v in slopes.items()},
        "ratio": median["stripped"] / median["raw_loop"],
        "defaults_ratio": median["defaults"] / median["raw_loop"],
        "defaults_over_stripped": median["defaults"] / median["stripped"],
        "lightning_floor": median["bare_lightning"] / median["raw_loop"],
        "over_lightning": median["stripped"] / median["bare_lightning"],
        # On a shared machine a slow-down only ever adds time: the fastest repeat of each
        # side is the least disturbed, so these ratios are the steadier ones.
        "ratio_of_min": fastest["stripped"] / fastest["raw_loop"],
        "defaults_ratio_of_min": fastest["defaults"] / fastest["raw_loop"],
    }


# ----------------------------------------------------------------------- op table
def step_time(dims: list[int], batch: int, device: str, steps: int, repeats: int) -> dict:
    """Seconds per training step (forward, loss, backward, SGD step) of the same MLP built
    from native torch ops and from the op table, with ``torch.utils.benchmark.Timer``."""
    import torch
    from torch.utils import benchmark

    from descentlab.autograd.layers import op_cross_entropy
    from descentlab.models.mlp import MLP

    results = {"native": [], "optable": []}
    nets, opts = {}, {}
    for kind in ("native", "optable"):
        torch.manual_seed(0)
        nets[kind] = MLP((dims[0],), dims[-1], hidden_dims=dims[1:-1], ops=kind).to(device)
        opts[kind] = torch.optim.SGD(nets[kind].parameters(), lr=0.01)
    x = torch.randn(batch, dims[0], device=device)
    y = torch.randint(0, dims[-1], (batch,), device=device)
    losses = {"native": torch.nn.functional.cross_entropy, "optable": op_cross_entropy}

    def step(kind: str) -> None:
        loss = losses[kind](nets[kind](x), y)
        opts[kind].zero_grad(set_to_none=True)
        loss.backward()
        opts[kind].step()

    # torch's Timer synchronizes CUDA around each measurement and warms up first
    timers = {
        kind: benchmark.Timer("step(kind)", globals={"step": step, "kind": kind})
        for kind in results
    }
    for _ in range(repeats):
        for kind, timer in timers.items():  # alternate, so that drifts hit both
            results[kind].append(timer.timeit(steps).mean)
    ratio = statistics.median(results["optable"]) / statistics.median(results["native"])
    return {
        "dims": dims,
        "batch": batch,
        "seconds_per_step": {k: summary(v) for k, v in results.items()},
        "ratio": ratio,
    }


# ------------------------------------------------------------------- start-up, accuracy
def startup(repeats: int) -> dict:
    bare = [sys.executable, "-c", "import torch, lightning"]

    def fdr() -> list[str]:  # a fresh run dir each time: a run dir holds one run
        return [
            sys.executable,
            str(ROOT / "train.py"),
            "trainer.fast_dev_run=true",
            "logger=none",
            f"hydra.run.dir={tempfile.mkdtemp(prefix='bench-')}",
            *QUIET,
        ]

    times = {"import torch, lightning": [], "train.py fast_dev_run": []}
    for _ in range(repeats):
        times["import torch, lightning"].append(timed(bare))
        times["train.py fast_dev_run"].append(timed(fdr()))
    ratio = statistics.median(times["train.py fast_dev_run"]) / statistics.median(
        times["import torch, lightning"]
    )
    return {"seconds": {k: summary(v) for k, v in times.items()}, "ratio": ratio}


def time_to_accuracy() -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    seconds = timed([sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run_dir}", *QUIET])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "seconds": seconds,
        "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "test_acc": metrics["test/acc"],
    }


def in_process_epoch(overrides: list[str], epochs: tuple[int, int], repeats: int) -> dict:
    """Per-epoch seconds of a run inside this process (imports already paid)."""
    import contextlib
    import io

    from descentlab.api import train

    e1, e2 = epochs
    slopes = []
    for _ in range(repeats):
        t = {}
        for e in (e1, e2):
            start = time.perf_counter()
            with contextlib.redirect_stdout(
                io.StringIO()
            ):  # the run's final table is not news here
                train(
                    [
                        *overrides,
                        f"trainer.max_epochs={e}",
                        "callbacks.early_stopping=null",
                        "logger=none",
                        "test=false",
                        *QUIET,
                    ],
                    tempfile.mkdtemp(prefix="bench-"),
                )
            t[e] = time.perf_counter() - start
        slopes.append((t[e2] - t[e1]) / (e2 - e1))
    return summary(slopes)


def scaling(
    data_dir: str,
    epochs: tuple[int, int],
    repeats: int,
    fractions=(0.25, 0.5, 1.0),
    widths=(1, 2, 4),
) -> dict:
    data = ["data=mnist", f"paths.data_dir={data_dir}", "trainer=cpu"]
    by_data = {
        f"x{round(f / fractions[0])}": in_process_epoch(
            [*data, f"data.train_fraction={f}"], epochs, repeats
        )
        for f in fractions
    }
    by_width = {
        f"x{w}": in_process_epoch(
            [*data, "data.train_fraction=0.25", f"model.net.hidden_dims=[{256 * w},{128 * w}]"],
            epochs,
            repeats,
        )
        for w in widths
    }
    base = by_data["x1"]["median"]
    linear = {k: v["median"] / base for k, v in by_data.items()}
    return {
        "seconds_per_epoch_by_data": by_data,
        "seconds_per_epoch_by_width": by_width,
        "data_cost_relative_to_x1": linear,
    }


def gpu_speedup(
    data_dir: str, epochs: tuple[int, int], repeats: int, hidden: list[int], batch: int
) -> dict:
    common = [
        "data=mnist",
        f"paths.data_dir={data_dir}",
        f"data.batch_size={batch}",
        f"model.net.hidden_dims=[{','.join(map(str, hidden))}]",
    ]
    cpu = in_process_epoch([*common, "trainer=cpu"], epochs, repeats)
    gpu = in_process_epoch(
        [*common, "trainer=gpu", "float32_matmul_precision=high"], epochs, repeats
    )
    from descentlab.data import MNISTDataModule

    data = MNISTDataModule(data_dir=data_dir)
    data.setup()
    n = len(data.splits["train"][1])  # training samples per epoch
    return {
        "hidden": hidden,
        "batch": batch,
        "seconds_per_epoch": {"cpu": cpu, "cuda": gpu},
        "samples_per_s": {"cpu": n / cpu["median"], "cuda": n / gpu["median"]},
        "speedup": cpu["median"] / gpu["median"],
    }


# ----------------------------------------------------------------------------- main
def ensure_mnist(data_dir: Path, n_train: int, n_test: int) -> str:
    """Real MNIST files if present, else random ones in torchvision's own format.

    Files with fewer training images than asked for (written by an earlier, smaller
    run) are replaced; the real MNIST has 60,000 and is never touched.
    """
    import struct

    images = data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    have = struct.unpack(">I", images.read_bytes()[4:8])[0] if images.exists() else 0
    if have < n_train:
        sys.path.insert(0, str(ROOT / "tests"))  # the tests' writers of fake files
        from helpers.fake_files import write_mnist_like

        # 20 % random labels keep the loss away from 0, as on real data
        write_mnist_like(data_dir, "MNIST", n_train=n_train, n_test=n_test, label_noise=0.2)
    return str(data_dir)


def image_folder_item(tiny: bool, repeats: int) -> dict:
    """``data=image_folder``: train.py vs a hand-written loop over the same DataLoader."""
    from bench_folder import image_folder_overhead

    work_dir = (
        Path(tempfile.mkdtemp(prefix="bench-folder-")) if tiny else ROOT / "data" / "bench_folder"
    )
    if tiny:
        return image_folder_overhead(work_dir, epochs=3, repeats=1, per_class=20)
    return image_folder_overhead(work_dir, repeats=repeats)


def machine(device: str) -> dict:
    import lightning
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "baseline":
        return run_baseline(argv[1:])
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--tiny: 1)")
    parser.add_argument(
        "--tiny", action="store_true", help="seconds, not minutes: checks the benchmark runs"
    )
    parser.add_argument(
        "--gpu-only", action="store_true", help="with --device cuda: items 1, 2 and 6 only"
    )
    parser.add_argument(
        "--items", default=None, help="comma-separated subset, e.g. overhead_mnist,overhead_digits"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench.json")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)

    tiny = args.tiny
    repeats = args.repeats if args.repeats is not None else (1 if tiny else 3)
    if tiny:  # small files of its own, never in the data dir
        mnist_dir = ensure_mnist(Path(tempfile.mkdtemp(prefix="bench-mnist-")), 6_000, 500)
    else:
        mnist_dir = ensure_mnist(args.data_dir, 60_000, 10_000)
    # Long enough that the per-epoch signal dwarfs the ±1 s jitter of a 7 s start-up.
    epochs = (1, 2) if tiny else (2, 10)
    results: dict = {"machine": machine(args.device), "repeats": repeats, "tiny": tiny}

    def report(key, value):
        results[key] = value
        print(f"{key}: {json.dumps(value, default=str)[:300]}", flush=True)

    device = args.device
    gpu_only = args.gpu_only and device == "cuda"
    big = [784, 256, 256, 10] if tiny else [784, 1024, 1024, 10]
    # batch 128: data=mnist's default, what a user's `python train.py data=mnist` trains
    items = {
        "overhead_mnist": lambda: epoch_overhead(
            "mnist", "mnist", mnist_dir, epochs, 128, device, repeats, [256, 128]
        ),
        # ~25 ms epochs: enough of them that ±1 s of start-up jitter stays small
        "overhead_digits": lambda: epoch_overhead(
            "digits",
            "digits",
            mnist_dir,
            (1, 3) if tiny else (5, 205),
            64,
            device,
            repeats,
            [256, 128],
        ),
        "optable_large": lambda: step_time(big, 256, device, 5 if tiny else 30, repeats),
        "optable_digits": lambda: step_time(
            [64, 256, 128, 10], 64, device, 20 if tiny else 200, repeats
        ),
        "startup": lambda: startup(repeats),
        "time_to_accuracy": time_to_accuracy,
        "scaling": lambda: scaling(
            mnist_dir, (1, 2) if tiny else (1, 4), repeats, widths=(1, 2) if tiny else (1, 2, 4)
        ),
        "image_folder": lambda: image_folder_item(tiny, repeats),
        # the compute-bound workload: FLOP/s against this machine's matmul ceiling
        "ceiling": lambda: ceiling.ceiling_item(tiny, repeats, device),
        "ceiling_bf16": lambda: ceiling.ceiling_item(tiny, repeats, device, "bf16"),
        "compile_mnist": lambda: ceiling.compile_small_item(mnist_dir, tiny, device),
        "gpu": lambda: gpu_speedup(
            mnist_dir,
            (1, 2) if tiny else (1, 3),
            repeats,
            [4096, 4096] if not tiny else [512],
            1024,
        ),
    }
    # bf16 on a CPU without bf16 matmul units is emulated (≈ 30× slower): a GPU figure
    skipped = {"gpu", "ceiling_bf16"} if device != "cuda" else set()
    if gpu_only:
        skipped |= {"startup", "time_to_accuracy", "scaling"}
    if tiny:
        skipped.add("time_to_accuracy")
    chosen = args.items.split(",") if args.items else [k for k in items if k not in skipped]
    unknown = [k for k in chosen if k not in items]
    if unknown:
        parser.error(f"unknown --items {unknown}; choose from {list(items)}")
    for key in chosen:
        report(key, items[key]())
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results)
    print(f"wrote {args.out}")
    return 0


def print_table(results: dict) -> None:
    nan = float("nan")

    def get(item: str, key: str) -> float:
        return results.get(item, {}).get(key, nan)

    rows = []
    for item, name, targets in (
        ("overhead_mnist", "MNIST-sized", ("<= 1.35", "<= 1.15", "<= 1.10")),
        ("overhead_digits", "digits", ("<= 1.5", "-", "<= 1.3")),
    ):
        if item not in results:
            continue
        rows += [
            (f"per-epoch, {name}: defaults / raw loop", get(item, "defaults_ratio"), targets[0]),
            (
                f"per-epoch, {name}: defaults / stripped train.py",
                get(item, "defaults_over_stripped"),
                targets[1],
            ),
            (f"per-epoch, {name}: stripped train.py / raw loop", get(item, "ratio"), targets[2]),
            (
                "  of which Lightning itself (bare Trainer / raw loop)",
                get(item, "lightning_floor"),
                "-",
            ),
            ("  of which descentlab (stripped / bare Trainer)", get(item, "over_lightning"), "-"),
        ]
    rows += [
        (
            "per-epoch, image folder: train.py / hand-written loop (same DataLoader)",
            get("image_folder", "ratio"),
            "<= 1.10",
        ),
        (
            "wide MLP: train.py FLOP/s / matmul ceiling",
            results.get("ceiling", {}).get("fractions_of_ceiling", {}).get("train_py", nan),
            ">= 0.8",
        ),
        (
            "wide MLP: train.py / hand-written eager loop (FLOP/s)",
            get("ceiling", "train_py_over_hand_loop"),
            "-",
        ),
        (
            "wide MLP: train.py model.compile=true / eager",
            get("ceiling", "compiled_over_eager_train_py"),
            "-",
        ),
        (
            "MNIST MLP: train.py model.compile=true / eager (samples/s)",
            get("compile_mnist", "compiled_over_eager"),
            ">= 1.0",
        ),
        (
            "wide MLP, bf16 (GPU): MFU of train.py",
            results.get("ceiling_bf16", {}).get("mfu", {}).get("train_py", nan),
            ">= 0.40",
        ),
        ("op table step, large MLP (optable / native)", get("optable_large", "ratio"), "<= 1.3"),
        ("op table step, digits MLP (optable / native)", get("optable_digits", "ratio"), "-"),
        (
            "start-up (train.py fast_dev_run / import torch, lightning)",
            get("startup", "ratio"),
            "<= 1.25",
        ),
    ]
    print(f"{'measure':62s} {'ratio':>7s}  target")
    for name, ratio, target in rows:
        print(f"{name:62s} {ratio:7.2f}  {target}")
    for key in ("overhead_mnist", "overhead_digits"):
        if key not in results:
            continue
        r = results[key]
        print(
            f"{key}: ratios of the fastest repeats: stripped {r['ratio_of_min']:.2f}, "
            f"defaults {r['defaults_ratio_of_min']:.2f}"
        )
    if "time_to_accuracy" in results:
        t = results["time_to_accuracy"]
        print(
            f"time to accuracy (default run): {t['seconds']:.1f} s, {t['epochs']} epochs, test acc {t['test_acc']:.4f}"
        )
    if "gpu" in results:
        g = results["gpu"]
        print(
            f"GPU: {g['samples_per_s']['cuda']:.0f} samples/s vs CPU {g['samples_per_s']['cpu']:.0f}: {g['speedup']:.1f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
