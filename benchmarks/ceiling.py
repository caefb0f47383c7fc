"""How close ``train.py`` comes to what this machine can compute: FLOP/s against a ceiling.

The workload is compute-bound on purpose: a wide MLP (784-4096-4096-10 at batch 512 on the
CPU, batch 4096 on a GPU), where nearly every FLOP is a matrix multiply. Measured in one
process, on one machine, one after another:

- **ceiling**: FLOP/s of the training step's own matrix multiplies, run bare with
  ``torch.mm`` at the workload's shapes and precision (per layer: the forward X·Wᵀ, the
  weight gradient Gᵀ·X and, but for the first layer, the input gradient G·W): what the
  step would reach if it did nothing but its matmuls;
- **compiled step**: a hand-written training step (forward, cross-entropy, backward, SGD)
  under ``torch.compile``, as FLOP/s;
- **hand-written loop**: the same step in eager PyTorch, over the same data in memory;
- **train.py** and **train.py model.compile=true**: the run's own ``perf/flops_per_s``
  from ``metrics.json`` (:mod:`descentlab.callbacks.throughput`: the median epoch after
  the first, data loading and the optimizer step included, validation excluded).

Reported as fractions of the ceiling and, on a GPU with a known data-sheet peak, of that
peak (MFU). FLOPs count 2 per multiply-add (``torch.utils.flop_counter``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# dense bf16 tensor-core peak of the data sheet, FLOP/s (None: unknown)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def workload(tiny: bool, device: str) -> dict:
    if tiny:
        return {"dims": [784, 512, 512, 10], "batch": 128, "batches": 8, "epochs": 2}
    batch = 4096 if device == "cuda" else 512
    return {"dims": [784, 4096, 4096, 10], "batch": batch, "batches": 12, "epochs": 3}


def matmul_flops(dims: list[int], batch: int) -> int:
    """FLOPs of one training step's matmuls: per layer 2·B·n_in·n_out forward, the same for
    the weight gradient, and again for the input gradient except at the first layer."""
    layers = [2 * batch * a * b for a, b in zip(dims[:-1], dims[1:], strict=True)]
    return 2 * sum(layers) + sum(layers[1:])


def matmul_ceiling(dims: list[int], batch: int, device: str, dtype, repeats: int) -> dict:
    """FLOP/s of the step's matmuls alone, at its shapes (best of ``repeats`` timings)."""
    import torch
    from torch.utils import benchmark

    shapes = []  # (A, B) pairs multiplied by one training step
    for index, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        x = torch.randn(batch, n_in, device=device, dtype=dtype)
        w = torch.randn(n_out, n_in, device=device, dtype=dtype)
        g = torch.randn(batch, n_out, device=device, dtype=dtype)
        shapes += [(x, w.t()), (g.t(), x)]
        if index > 0:
            shapes.append((g, w))

    def step() -> None:
        for a, b in shapes:
            torch.mm(a, b)

    # Timer defaults to one thread: the ceiling is the machine's, with torch's thread count
    timer = benchmark.Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    seconds = min(timer.blocked_autorange(min_run_time=1.0).median for _ in range(repeats))
    return {"seconds_per_step": seconds, "flops_per_s": matmul_flops(dims, batch) / seconds}


def hand_step_flops(dims, batch, batches, device, dtype, compiled: bool, repeats: int) -> dict:
    """FLOP/s of a hand-written training step (eager, or ``torch.compile``d), data in memory."""
    import torch

    from descentlab.callbacks.throughput import flops_per_sample
    from descentlab.models.mlp import MLP

    torch.manual_seed(0)
    net = MLP((dims[0],), dims[-1], hidden_dims=dims[1:-1]).to(device)
    x = torch.randn(batches, batch, dims[0], device=device)
    y = torch.randint(0, dims[-1], (batches, batch), device=device)
    per_sample = flops_per_sample(net, x[0])
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)

    def step(xb, yb):
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if compiled:
        step = torch.compile(step)

    def epoch() -> float:
        start = time.perf_counter()
        for i in range(batches):
            step(x[i], y[i])
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    epoch()  # warm-up (and compilation)
    seconds = min(epoch() for _ in range(repeats))
    return {"flops_per_s": per_sample * batch * batches / seconds}


def write_arrays(dims: list[int], n: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    path = Path(tempfile.mkdtemp(prefix="bench-ceiling-")) / "wide.npz"
    np.savez(
        path,
        x=rng.standard_normal((n, dims[0]), dtype=np.float32),
        y=rng.integers(0, dims[-1], n),
    )
    return path


def train_py_flops(path: Path, work: dict, device: str, extra: list[str]) -> dict:
    """``train.py``'s own ``perf/flops_per_s`` on the workload (a subprocess, like a user)."""
    run_dir = Path(tempfile.mkdtemp(prefix="bench-ceiling-run-"))
    hidden = ",".join(map(str, work["dims"][1:-1]))
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "data=arrays",
        f"data.path={path}",
        f"data.batch_size={work['batch']}",
        "data.val_fraction=0.05",
        "data.test_fraction=0.05",
        f"model.net.hidden_dims=[{hidden}]",
        f"trainer.max_epochs={work['epochs']}",
        "trainer=gpu" if device == "cuda" else "trainer=cpu",
        "optimizer=torch_sgd",
        "optimizer.lr=0.001",
        "callbacks=none",
        "logger=none",
        "test=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.num_sanity_val_steps=0",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run(
        command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "flops_per_s": metrics["perf/flops_per_s"],
        "samples_per_s": metrics["perf/samples_per_s"],
        "command": " ".join(command[1:]),
    }


def device_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def ceiling_item(tiny: bool, repeats: int, device: str, precision: str = "32") -> dict:
    """The compute-bound workload: ceilings, train.py's fraction of them, compile ratios."""
    import torch

    work = workload(tiny, device)
    dims, batch = work["dims"], work["batch"]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    train_extra = ["trainer.precision=bf16-mixed"] if precision == "bf16" else []
    # the run's training split is 90 % of the file: `batches` full batches of it
    path = write_arrays(dims, int(work["batch"] * work["batches"] / 0.9) + 1)
    ceiling = matmul_ceiling(dims, batch, device, dtype, repeats)
    hand = hand_step_flops(dims, batch, work["batches"], device, dtype, False, repeats)
    results = {
        "workload": {**work, "precision": precision, "device": device},
        "matmul_ceiling_flops_per_s": ceiling["flops_per_s"],
        "hand_loop_flops_per_s": hand["flops_per_s"],
    }
    eager = train_py_flops(path, work, device, train_extra)
    compiled = train_py_flops(path, work, device, [*train_extra, "model.compile=true"])
    results["train_py"] = eager
    results["train_py_compiled"] = compiled
    if not tiny:
        step = hand_step_flops(dims, batch, work["batches"], device, dtype, True, repeats)
        results["compiled_step_flops_per_s"] = step["flops_per_s"]
    top = ceiling["flops_per_s"]
    results["fractions_of_ceiling"] = {
        "train_py": eager["flops_per_s"] / top,
        "train_py_compiled": compiled["flops_per_s"] / top,
        "hand_loop": hand["flops_per_s"] / top,
        **(
            {"compiled_step": results["compiled_step_flops_per_s"] / top}
            if "compiled_step_flops_per_s" in results
            else {}
        ),
    }
    results["train_py_over_hand_loop"] = eager["flops_per_s"] / hand["flops_per_s"]
    results["compiled_over_eager_train_py"] = compiled["flops_per_s"] / eager["flops_per_s"]
    peak = device_peak(device)
    if peak is not None and precision == "bf16":
        results["mfu"] = {"train_py": eager["flops_per_s"] / peak, "peak_flops_per_s": peak}
    return results


def compile_small_item(mnist_dir: str, tiny: bool, device: str) -> dict:
    """``model.compile=true`` against eager on the MNIST-sized MLP: samples/s of each run."""
    rates = {}
    for name, extra in (("eager", []), ("compiled", ["model.compile=true"])):
        run_dir = Path(tempfile.mkdtemp(prefix="bench-compile-"))
        command = [
            sys.executable,
            str(ROOT / "train.py"),
            "data=mnist",
            f"paths.data_dir={mnist_dir}",
            "trainer=gpu" if device == "cuda" else "trainer=cpu",
            f"trainer.max_epochs={2 if tiny else 4}",
            "callbacks=none",
            "logger=none",
            "test=false",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run_dir}",
            *extra,
        ]
        subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rates[name] = json.loads((run_dir / "metrics.json").read_text())["perf/samples_per_s"]
    return {
        "samples_per_s": rates,
        "compiled_over_eager": rates["compiled"] / rates["eager"],
    }
