"""Plots and a table from finished runs: ``python -m descentlab.report DIR [DIR ...]``.

DIR is a Hydra multirun dir (``logs/multiruns/<time>``, one numbered run dir each) or a
run dir; several may be given. Each run is read from its own files: ``metrics.json``
(final metrics), ``history.json`` (per-epoch metrics, written by every run whatever its
logger; runs from before it existed: ``csv/metrics.csv``) and ``.hydra/overrides.yaml``
(what it was asked to do). Runs are labelled by the overrides that differ between
them. Writes ``curves.png`` (train/val loss and accuracy per epoch, one line per run,
a dot at the epoch whose weights the run kept) and ``table.md`` (final metrics, best
first by ``--metric``) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from descentlab.errors import ReportError

CURVES = ("train/loss", "val/loss", "train/acc", "val/acc")
FINISHED = ("completed", "early_stopped")  # runs whose metrics can be ranked
TABLE_COLUMNS = (
    "train/loss",
    "val/loss",
    "test/loss",
    "train/acc",
    "val/acc",
    "test/acc",
    "best_epoch",
    "epochs",
    "status",
)


@dataclass
class Run:
    path: Path
    overrides: list[str]
    final: dict
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    label: str = ""

    @property
    def status(self) -> str:
        return str(self.final.get("status", "completed"))  # files from before status existed

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def find_runs(paths: list[Path]) -> list[Path]:
    """Run dirs (holding metrics.json) in the given dirs, sorted by Hydra job number."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise ReportError(f"{path} is not a directory")
        if (path / "metrics.json").is_file():
            found.append(path)
            continue
        children = [p.parent for p in path.glob("*/metrics.json")]
        found.extend(
            sorted(
                children,
                key=lambda p: (
                    not p.name.isdigit(),
                    int(p.name) if p.name.isdigit() else 0,
                    p.name,
                ),
            )
        )
    if not found:
        raise ReportError(f"no finished runs (a metrics.json) in {', '.join(map(str, paths))}")
    return found


def read_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch values of each metric: ``history.json``, else the CSV logger's file."""
    history, csv_path = run_dir / "history.json", run_dir / "csv" / "metrics.csv"
    try:
        if history.is_file():
            return _read_history(history)
        if csv_path.is_file():
            return _read_csv(csv_path)
    except (ValueError, KeyError, TypeError, AttributeError, csv.Error, UnicodeDecodeError) as err:
        broken = history if history.is_file() else csv_path
        raise ReportError(f"{broken} cannot be read ({err})") from None
    return {}


def _read_history(path: Path) -> dict[str, list[tuple[int, float]]]:
    per_epoch: dict[str, dict[int, float]] = {}
    for epoch, values in json.loads(path.read_text())["epochs"].items():
        for key, value in values.items():
            per_epoch.setdefault(key, {})[int(epoch)] = float(value)
    return {k: sorted(v.items()) for k, v in per_epoch.items()}


def _read_csv(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning's CSV log: the last value of each metric in each epoch."""
    per_epoch: dict[str, dict[int, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                per_epoch.setdefault(key, {})[epoch] = float(value)
    return {k: sorted(v.items()) for k, v in per_epoch.items()}


def check_curves(runs: list[Run]) -> None:
    """Every run that trained has per-epoch curves to plot; else one line saying why."""
    missing = [r for r in runs if not r.curves and r.final.get("epochs")]
    if missing:
        raise ReportError(
            f"{missing[0].path} has no per-epoch metrics (no history.json, no csv/metrics.csv): "
            f"rerun it with this version of descentlab, or with logger=csv"
        )


def label_runs(runs: list[Run]) -> None:
    """Label each run by the overrides that are not shared by every run."""
    shared = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    for run in runs:
        differing = [o for o in run.overrides if o not in shared]
        run.label = " ".join(differing) or run.path.name


def _number(value):
    """``train.py`` writes NaN and ±inf as the strings "nan", "inf", "-inf" (JSON has none)."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return value


def read_final(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    try:
        final = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path} cannot be read ({err}): remove that run or rerun it") from None
    if not isinstance(final, dict):
        raise ReportError(f"{path} is not a metrics.json (expected an object of metrics)")
    return {key: _number(value) for key, value in final.items()}


def load_runs(paths: list[Path]) -> list[Run]:
    runs = []
    for run_dir in find_runs(paths):
        runs.append(
            Run(run_dir, read_overrides(run_dir), read_final(run_dir), read_curves(run_dir))
        )
    label_runs(runs)
    for run in runs:
        if not run.finished:
            run.label += f" [{run.status}]"
    return runs


def check_comparable(runs: list[Run], metric: str) -> None:
    """The finished runs can be ranked by ``metric``; failed/diverged ones are listed after them."""
    runs = [r for r in runs if r.finished]
    if not runs:
        return
    missing = [r.label for r in runs if metric not in r.final]
    if missing:
        raise ReportError(
            f"metric {metric!r} is missing from runs {missing}: they cannot be ranked by it"
        )
    # The core metrics must match; extras (train/penalty, verify/..., diag/...) may differ.
    core = {f"{stage}/{name}" for stage in ("train", "val", "test") for name in ("loss", "acc")}
    keys = [set(r.final) & core for r in runs]
    if any(k != keys[0] for k in keys):
        differing = sorted(set.union(*keys) - set.intersection(*keys))
        raise ReportError(
            f"the runs logged different metrics ({', '.join(differing)}): compare runs of one kind"
        )


def rank(runs: list[Run], metric: str) -> list[Run]:
    """Finished runs best first by ``metric`` (NaN last), then the others in their order."""
    lower_is_better = metric.endswith("loss")

    def key(run: Run) -> tuple[bool, float]:
        value = run.final.get(metric)
        if not isinstance(value, (int, float)) or math.isnan(value):
            return (True, 0.0)
        return (False, value if lower_is_better else -value)

    return sorted((r for r in runs if r.finished), key=key) + [r for r in runs if not r.finished]


def markdown_table(runs: list[Run], metric: str) -> str:
    columns = [c for c in TABLE_COLUMNS if any(c in r.final for r in runs)]
    lines = ["| run | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for run in rank(runs, metric):
        cells = []
        for column in columns:
            value = run.final.get(column)
            cells.append(
                "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
            )
        lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
    reasons = [
        f"- {run.label}: {run.final['reason']}"
        for run in runs
        if not run.finished and run.final.get("reason")
    ]
    return "\n".join(lines + ([""] + reasons if reasons else [])) + "\n"


def plot_curves(runs: list[Run], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = draw_curves(runs)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_curves(runs: list[Run]):
    """The 2×2 figure of train/val loss and accuracy per epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, name in zip(axes.flat, CURVES, strict=True):
        for run in runs:
            points = run.curves.get(name, [])
            if not points:
                continue
            epochs, values = zip(*points, strict=True)
            (line,) = ax.plot(epochs, values, label=run.label, linewidth=1.5)
            best = run.final.get("best_epoch")
            if best in epochs:  # the epoch whose weights the run kept (and tested)
                ax.plot(best, values[epochs.index(best)], "o", color=line.get_color(), markersize=6)
        stage, quantity = name.split("/")
        ax.set_title(f"{stage} {quantity} (dot: the kept epoch)")
        ax.grid(alpha=0.3)
        if quantity == "loss":
            ax.set_yscale("log")
            ax.set_ylabel("cross-entropy (log scale)")
        else:
            ax.set_ylabel("accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def make_report(
    paths: list[Path], out: Path | None = None, metric: str = "val/acc"
) -> tuple[Path, Path]:
    runs = load_runs(paths)
    check_comparable(runs, metric)
    check_curves(runs)
    out = out or (paths[0] / "report")
    out.mkdir(parents=True, exist_ok=True)
    table = out / "table.md"
    table.write_text(markdown_table(runs, metric))
    figure = out / "curves.png"
    plot_curves(runs, figure)
    return figure, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m descentlab.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="a multirun dir, or run dirs")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write (default: FIRST_DIR/report)"
    )
    parser.add_argument(
        "--metric", default="val/acc", help="rank runs by this final metric (default val/acc)"
    )
    args = parser.parse_args(argv)
    try:
        figure, table = make_report(args.dirs, args.out, args.metric)
    except ReportError as err:
        print(f"descentlab.report: error: {err}", file=sys.stderr)
        return 1
    print(table.read_text())
    print(f"wrote {figure} and {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
