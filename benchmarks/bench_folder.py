"""Benchmark of ``data=image_folder``: ``train.py`` vs a hand-written loop over the same files.

Both sides read the same generated folder of JPEG and PNG files (scikit-learn's digits,
written as 3-channel images in class folders) through the same DataLoader (the
ImageFolderDataModule's: workers, batch size, transforms v2) and train the same MLP
with Adam, with a validation pass per epoch. Each process clocks the start of every
epoch (train.py through a callback, :class:`EpochClock`, given on its command line); an
epoch's seconds are the time from its start to the next one's: training, validation,
checkpoints and logging, but not start-up, the sanity check or the first epoch (workers
starting). The figure is the median over the epochs of all repeats (fresh processes, sides
alternating), as images per second of training data, and the ratio train.py / hand loop.

    python benchmarks/bench_folder.py            # ~3,600 files, a few minutes on 2 cores
    python benchmarks/bench_folder.py --tiny     # seconds: keeps it working (tests)
    python benchmarks/bench.py --items image_folder   # the same, as an item of `make bench`

Self-contained on purpose (one function, :func:`image_folder_overhead`, returns the
figures as a dict), so that ``make bench`` can call it wherever the benchmark lives.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback  # start-up is not timed: imports cost nothing

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "callbacks.progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def write_folder(root: Path, copies: int = 1, per_class: int | None = None) -> tuple[Path, int]:
    """The digits as ``root/<digit>/<n>.png`` and ``.jpg`` (2 × 1,797 × copies files, 32 px;
    ``per_class``: at most that many of each digit per copy and format)."""
    sys.path.insert(0, str(ROOT / "tests"))  # the tests' writers of fake files
    from helpers.fake_files import write_image_folder

    if not (root / "done").exists():
        for copy in range(copies):
            for suffix in (".png", ".jpg"):
                write_image_folder(
                    root / f"c{copy}{suffix[1:]}", per_class, size=32, suffix=suffix, seed=copy
                )
        # one ImageFolder: merge the copies' class folders by moving their files
        for part in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("c")):
            for cls in part.iterdir():
                (root / "all" / cls.name).mkdir(parents=True, exist_ok=True)
                for f in cls.iterdir():
                    f.rename(root / "all" / cls.name / f"{part.name}_{f.name}")
        (root / "done").write_text("")
    n = sum(1 for _ in (root / "all").rglob("*.*"))
    return root / "all", n


def datamodule(folder: str, batch_size: int, workers: int):
    """The same DataModule train.py builds for ``data=image_folder`` with these settings."""
    from descentlab.data.image_folder import ImageFolderDataModule

    return ImageFolderDataModule(
        folder,
        batch_size=batch_size,
        eval_batch_size=256,
        num_workers=workers,
        image_size=32,
        hflip=False,
        seed=12345,
    )


class EpochClock(Callback):
    """Writes the ``time.perf_counter()`` at the start of every training epoch, and at the
    end of training, to ``path`` (JSON). Loaded by train.py from its command line
    (``+callbacks.epoch_clock._target_=bench_folder.EpochClock``)."""

    def __init__(self, path: str):
        self.path, self.starts = path, []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.starts.append(time.perf_counter())

    def on_fit_end(self, trainer, pl_module) -> None:
        self.starts.append(time.perf_counter())  # the end of the last epoch
        Path(self.path).write_text(json.dumps(self.starts))


def hand_loop(folder: str, epochs: int, batch_size: int, workers: int, clock: str) -> None:
    """What a researcher writes without a framework: the same DataLoaders and MLP, Adam,
    a validation pass (loss and accuracy) after every epoch."""
    import torch
    from torch import nn

    from descentlab.models.mlp import MLP

    torch.manual_seed(0)
    dm = datamodule(folder, batch_size, workers)
    dm.setup()
    train, val = dm.train_dataloader(), dm.val_dataloader()
    model = MLP(input_shape=dm.dims, num_outputs=dm.num_classes, hidden_dims=[256, 128])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    starts = []
    for epoch in range(epochs):
        starts.append(time.perf_counter())
        train.sampler.set_epoch(epoch)
        model.train()
        for x, y in train:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            outs = [(model(x), y) for x, y in val]
            logits, ys = torch.cat([o for o, _ in outs]), torch.cat([y for _, y in outs])
            val_loss = nn.functional.cross_entropy(logits, ys).item()
            val_acc = (logits.argmax(1) == ys).float().mean().item()
    starts.append(time.perf_counter())
    Path(clock).write_text(json.dumps(starts))
    print(f"val_loss={val_loss:.4f} val_acc={val_acc:.4f}")


def framework_cmd(folder: str, epochs: int, batch_size: int, workers: int, clock: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "data=image_folder",
        f"data.root={folder}",
        "data.image_size=32",
        "data.hflip=false",
        f"data.batch_size={batch_size}",
        "data.eval_batch_size=256",
        f"data.num_workers={workers}",
        "trainer=cpu",
        f"trainer.max_epochs={epochs}",
        "callbacks.early_stopping=null",
        "logger=csv",
        "test=false",
        f"hydra.run.dir={tempfile.mkdtemp(prefix='bench-folder-')}",
        *QUIET,
        "+callbacks.epoch_clock._target_=bench_folder.EpochClock",
        f"+callbacks.epoch_clock.path={clock}",
    ]


def hand_cmd(folder: str, epochs: int, batch_size: int, workers: int, clock: str) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "hand-loop",
        "--folder",
        folder,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--workers",
        str(workers),
        "--clock",
        clock,
    ]


def epoch_seconds(cmd: list[str], clock: Path) -> list[float]:
    """Run one side in a fresh process; the seconds of each of its epochs but the first."""
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        ),
    }
    clock.unlink(missing_ok=True)  # never read the previous run's
    subprocess.run(
        cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    starts = json.loads(clock.read_text())
    return [b - a for a, b in itertools.pairwise(starts[1:])]


def image_folder_overhead(
    work_dir: Path,
    epochs: int = 8,
    batch_size: int = 64,
    workers: int | None = None,
    repeats: int = 3,
    copies: int = 1,
    per_class: int | None = None,
) -> dict:
    """Seconds per epoch and training images per second of both sides, and their ratio
    (runs of ``epochs`` epochs, at least 3: the first is not counted)."""
    if epochs < 3:
        raise ValueError(f"epochs={epochs}: at least 3 (the first epoch is not counted)")
    folder, n_files = write_folder(Path(work_dir), copies, per_class)
    workers = workers if workers is not None else max(1, min(8, os.cpu_count() or 1))
    dm = datamodule(str(folder), batch_size, workers)
    dm.setup()
    n_train = len(dm.samples["train"])
    sides = {"descentlab": framework_cmd, "hand_loop": hand_cmd}
    seconds = {side: [] for side in sides}
    clock = Path(tempfile.mkdtemp(prefix="bench-folder-clock-")) / "starts.json"
    for _ in range(repeats):
        for side, make in sides.items():  # alternate the sides so drifts hit both
            cmd = make(str(folder), epochs, batch_size, workers, str(clock))
            seconds[side] += epoch_seconds(cmd, clock)
    median = {side: statistics.median(v) for side, v in seconds.items()}
    return {
        "name": "image_folder",
        "files": n_files,
        "train_images": n_train,
        "batch_size": batch_size,
        "num_workers": workers,
        "epochs_timed": {side: len(v) for side, v in seconds.items()},
        "seconds_per_epoch": {
            side: {"min": min(v), "median": statistics.median(v), "max": max(v)}
            for side, v in seconds.items()
        },
        "images_per_second": {
            side: n_train / m if m > 0 else float("inf") for side, m in median.items()
        },
        "ratio": median["descentlab"] / median["hand_loop"],
        "ratio_of_min": min(seconds["descentlab"]) / min(seconds["hand_loop"]),
        "target": 1.10,
    }


def format_row(result: dict) -> str:
    ips = result["images_per_second"]
    return (
        f"image folder ({result['files']} JPEG/PNG files, {result['train_images']} training images, "
        f"batch {result['batch_size']}, {result['num_workers']} workers): train.py {ips['descentlab']:.0f} "
        f"img/s, hand loop {ips['hand_loop']:.0f} img/s, ratio {result['ratio']:.2f} "
        f"(of fastest epochs {result['ratio_of_min']:.2f}; target <= {result['target']:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "hand-loop":  # one timed side, in a fresh process
        loop = argparse.ArgumentParser(prog="python benchmarks/bench_folder.py hand-loop")
        for name in ("--epochs", "--batch-size", "--workers"):
            loop.add_argument(name, type=int, required=True)
        loop.add_argument("--folder", required=True)
        loop.add_argument("--clock", required=True, help="write the epochs' start times here")
        args = loop.parse_args(argv[1:])
        hand_loop(args.folder, args.epochs, args.batch_size, args.workers, args.clock)
        return 0
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_folder.py")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="400 files, one run of 3 epochs")
    parser.add_argument(
        "--epochs", type=int, default=8, help="epochs per run; all but the first are timed"
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "bench_folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.epochs < 3 or args.repeats < 1:
        parser.error("--epochs at least 3 (the first epoch is not timed), --repeats at least 1")
    # checked before minutes of measuring: a bad --out lost the figures at the end
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        parser.error(f"--out {args.out}: not a file in an existing folder")
    if args.work_dir.exists() and not args.work_dir.is_dir():
        parser.error(f"--work-dir {args.work_dir}: not a folder")
    try:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--work-dir {args.work_dir}: cannot be created ({err.strerror})")
    if args.tiny:
        result = image_folder_overhead(args.work_dir, epochs=3, repeats=1, per_class=20)
    else:
        result = image_folder_overhead(args.work_dir, epochs=args.epochs, repeats=args.repeats)
    print(format_row(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
