"""Plots and a table from finished runs: ``python -m descentlab.report DIR [DIR ...]``.

DIR is a Hydra multirun dir (``logs/multiruns/<time>``, one numbered run dir each) or a
run dir; several may be given. Each run is read from its own files: ``metrics.json``
(final metrics, and since tasks existed the run's ``task``, ``objective`` and
``objective_mode``), ``history.json`` (per-epoch metrics, written by every run whatever its
logger; runs from before it existed: ``csv/metrics.csv``), ``.hydra/overrides.yaml`` (what
it was asked to do) and ``.hydra/config.yaml`` (its data). Runs are labelled by the
overrides that differ between them.

The runs must be comparable: one task (classification, regression, binary), one dataset
(``data._target_``, ``data.path``/``data.root`` and ``data.classes``; runs without
``.hydra/config.yaml`` are not checked), the same ``train/``, ``val/``, ``test/`` metrics (``train/penalty``, which
a regularizer adds, may differ); otherwise one line says which runs differ. They are ranked by
``--metric``, by default the runs' own objective (``val/acc`` for classification and
binary, ``val/loss`` for regression; ``val/acc`` for runs from before tasks), in the
direction ``--mode`` or else the objective's (``objective_mode``) or else the metric's
(:data:`descentlab.rules.METRIC_MODES`). NaN ranks last, runs that did not finish
after the finished ones.

Writes into ``--out`` (default ``FIRST_DIR/report``):

- ``table.md``: what the runs are ranked by and which way, then every ``train/``, ``val/``,
  ``test/`` metric of each run (loss first, then the task's), best first;
- ``curves.png``: one row per metric (loss, acc / mse, mae, r2 / acc, auroc), train and
  val per epoch, one line per run, a dot at the epoch whose weights the run kept;
- ``diagnostics.png``, when a run logged ``diag/grad_norm/layer_i`` or
  ``diag/act_var/layer_i`` (``callbacks=[default,diagnostics]``, ``+experiment=deep_linear``):
  the gradient norm and the activation variance of each layer at the first epoch (or
  logged step) that has them, one line per run: vanishing or exploding gradients at a
  glance. They are read from ``history.json``, else from ``csv/metrics.csv`` (the
  diagnostics callback writes to the loggers: give the run ``logger=csv``).

``--group-by KEY[,KEY]`` (``--group-by optimizer``) also writes the runs' seed statistics
(:mod:`descentlab.seed_stats`): runs with the same values of the keys (override, else Hydra's
config group choice, else ``.hydra/config.yaml``) form a group and must differ only in
``seed``. ``groups.md``: per group n, mean ± std (ddof=1) and SE = std/√n of each final
metric, best first by the ranking metric's mean, then each group's paired difference against
the best over their shared seeds (d̄, its SE, wins, whether |d̄| > 2·SE);
``curves_by_group.png``: each group's mean curve ± one std over its seeds. Unfinished runs
are left out and counted.

Torch-free: a report needs neither torch nor Lightning.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from descentlab import seed_stats
from descentlab.errors import ReportError
from descentlab.run import FINISHED  # runs whose metrics can be ranked (torch-free)

STAGES = ("train", "val", "test")
STAGE_METRIC = re.compile(r"^(train|val|test)/([^/]+)$")
# train/val/test names that depend on a run's options, not on its task: runs may differ in them
EXTRAS = ("penalty",)
TRAILING_COLUMNS = ("best_epoch", "epochs", "status")
DEFAULT_TASK, DEFAULT_OBJECTIVE = "classification", "val/acc"  # runs from before tasks
LOSS_LABELS = {
    "classification": "cross-entropy",
    "regression": "½‖ŷ − y‖²",
    "binary": "loss",
}
BINARY_LOSS_LABELS = {"bce": "logistic loss (BCE)", "squared": "½(y − σ(z))²"}
METRIC_LABELS = {
    "acc": "accuracy",
    "mse": "mean squared error",
    "mae": "mean absolute error",
    "r2": "R² (1 is perfect)",
    "auroc": "AUROC",
    "penalty": "penalty",
}
LOG_SCALE = ("loss", "mse", "mae")  # when every value is positive
DIAGNOSTICS = {
    "grad_norm": "gradient norm ‖∂L/∂W‖ of each layer",
    "act_var": "activation variance of each hidden layer",
}
DIAGNOSTIC = re.compile(r"^diag/(grad_norm|act_var)/layer_(\d+)$")


def mode_of(metric: str) -> str | None:
    """``min`` or ``max`` for a known metric name (``val/mse``: min), else None."""
    from descentlab.rules import mode_of as rule_mode_of

    return rule_mode_of(metric, None)


@dataclass
class Run:
    path: Path
    overrides: list[str]
    final: dict
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    label: str = ""
    config: dict = field(default_factory=dict)  # .hydra/config.yaml, unresolved; {} if none
    # diag family ("grad_norm", "act_var") -> [(layer, value)], at the first epoch/step logged
    diagnostics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    diagnostics_at: str = ""  # "epoch 0", "step 0"

    @property
    def status(self) -> str:
        return str(self.final.get("status", "completed"))  # files from before status existed

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def task(self) -> str:
        """The run's task: recorded in metrics.json, else in its config, else classification
        (runs from before tasks; a run that stopped before training records no task)."""
        if self.final.get("task"):
            return str(self.final["task"])
        target = (self.config.get("task") or {}).get("_target_")
        return str(target).rsplit(".", 1)[-1].lower() if target else DEFAULT_TASK

    @property
    def dataset(self) -> str | None:
        """``data._target_``, ``data.path``/``data.root`` and ``data.classes`` of its config
        (what makes two test splits different data); None without one."""
        data = self.config.get("data")
        if not isinstance(data, dict) or not data.get("_target_"):
            return None
        keys = ("path", "root", "classes")
        where = [f"{key}={data[key]}" for key in keys if data.get(key) is not None]
        return " ".join([str(data["_target_"]), *where])


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


def jobs_without_metrics(paths: list[Path]) -> list[Path]:
    """Job dirs of the given multirun dirs that hold a Hydra config but no ``metrics.json``:
    jobs killed before they could record anything (kill -9, a node lost). They cannot be
    ranked; the report names them instead of leaving them out silently."""
    missing = []
    for path in paths:
        if path.is_dir() and not (path / "metrics.json").is_file():
            missing += sorted(
                p.parent.parent
                for p in path.glob("*/.hydra/overrides.yaml")
                if not (p.parent.parent / "metrics.json").is_file()
            )
    return missing


def read_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def read_config(run_dir: Path) -> dict:
    """The run's composed config (``.hydra/config.yaml``), interpolations left as written."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, UnicodeDecodeError, YAMLError, OmegaConfBaseException) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ReportError(f"{path} cannot be read ({reason})") from None
    return config if isinstance(config, dict) else {}


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


def read_diagnostics(
    run_dir: Path, curves: dict[str, list[tuple[int, float]]]
) -> tuple[dict[str, list[tuple[int, float]]], str]:
    """Each layer's ``diag/grad_norm`` and ``diag/act_var`` at the first epoch that has them
    (``history.json``), else at the first step the CSV logger wrote them; ({}, "") if none."""
    first: dict[int, dict[str, float]] = {}  # epoch -> the epoch's diag values
    for key, points in curves.items():
        if DIAGNOSTIC.match(key):
            for epoch, value in points:
                first.setdefault(epoch, {})[key] = value
    if first:
        epoch = min(first)
        return _by_layer(first[epoch]), f"epoch {epoch}"
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return {}, ""
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                values = {k: float(v) for k, v in row.items() if k and DIAGNOSTIC.match(k) and v}
                if values:
                    step = row.get("step")
                    return _by_layer(values), f"step {int(float(step))}" if step else ""
    except (ValueError, csv.Error, UnicodeDecodeError) as err:
        raise ReportError(f"{path} cannot be read ({err})") from None
    return {}, ""


def _by_layer(values: dict[str, float]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for key, value in values.items():
        family, layer = DIAGNOSTIC.match(key).groups()
        out.setdefault(family, []).append((int(layer), value))
    return {family: sorted(points) for family, points in out.items()}


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
        curves = read_curves(run_dir)
        diagnostics, at = read_diagnostics(run_dir, curves)
        runs.append(
            Run(
                run_dir,
                read_overrides(run_dir),
                read_final(run_dir),
                curves,
                config=read_config(run_dir),
                diagnostics=diagnostics,
                diagnostics_at=at,
            )
        )
    label_runs(runs)
    for run in runs:
        if not run.finished:
            run.label += f" [{run.status}]"
    return runs


# --------------------------------------------------------------------- what runs compare
def _differ(what: str, values: dict[str, list[Run]], advice: str) -> ReportError:
    """One line: which runs have which value (the first run of each value named)."""
    listed = "; ".join(
        f"{value} ({group[0].path}" + (f" and {len(group) - 1} more)" if len(group) > 1 else ")")
        for value, group in values.items()
    )
    return ReportError(f"the runs {what}: {listed}: {advice}")


def _grouped(runs: list[Run], key) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        value = key(run)
        if value is not None:
            groups.setdefault(str(value), []).append(run)
    return groups


def check_same_task_and_data(runs: list[Run]) -> None:
    """One task and one dataset: a table of a classifier's and a regressor's runs, or of runs
    on two datasets, ranks numbers that do not compare. Runs without a config (from before
    ``.hydra/config.yaml`` was kept) are not checked for their data."""
    tasks = _grouped(runs, lambda r: r.task)
    if len(tasks) > 1:
        raise _differ("are of different tasks", tasks, "report the runs of one task at a time")
    datasets = _grouped(runs, lambda r: r.dataset)
    if len(datasets) > 1:
        raise _differ(
            "trained on different data", datasets, "report the runs of one dataset at a time"
        )


def objective_of(runs: list[Run]) -> str:
    """The objective every finished run recorded (runs from before tasks: val/acc)."""
    finished = [r for r in runs if r.finished]
    objectives = _grouped(finished, lambda r: r.final.get("objective") or DEFAULT_OBJECTIVE)
    if len(objectives) > 1:
        raise _differ(
            "rank by different objectives", objectives, "choose one with --metric (and --mode)"
        )
    return next(iter(objectives), DEFAULT_OBJECTIVE)


def objective_mode(runs: list[Run], metric: str) -> str | None:
    """The ``objective_mode`` the finished runs recorded, when ``metric`` is their objective."""
    finished = [r for r in runs if r.finished]
    if not finished or any(r.final.get("objective") != metric for r in finished):
        return None
    modes = {r.final.get("objective_mode") for r in finished}
    return modes.pop() if len(modes) == 1 else None


def resolve_ranking(
    runs: list[Run], metric: str | None = None, mode: str | None = None
) -> tuple[str, str]:
    """The metric to rank by (``--metric``, else the runs' objective) and which way is better:
    ``--mode``, else the objective's recorded mode when ranking by it, else the metric's own
    (:data:`descentlab.rules.METRIC_MODES`)."""
    metric = metric or objective_of(runs)
    mode = mode or objective_mode(runs, metric) or mode_of(metric)
    if mode not in ("min", "max"):
        raise ReportError(
            f"which way {metric!r} is better is not known: give --mode min or --mode max"
        )
    return metric, mode


def metric_names(runs: list[Run], keys) -> list[str]:
    """The names X of ``train/X``, ``val/X``, ``test/X`` in ``keys(run)``: loss first, then the
    tasks' metrics in their order (acc / mse, mae, r2 / acc, auroc), then any others."""
    seen: list[str] = []
    for run in runs:
        for key in keys(run):
            match = STAGE_METRIC.match(key)
            if match and match.group(2) not in seen:
                seen.append(match.group(2))
    from descentlab.rules import METRIC_MODES

    order = list(METRIC_MODES)
    return sorted(seen, key=lambda n: (order.index(n) if n in order else len(order), seen.index(n)))


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

    # Every train/val/test metric must match; the extras (train/penalty) may differ, and so
    # may everything else (verify/..., diag/..., gap/...).
    def core(run: Run) -> set[str]:
        return {k for k in run.final if (m := STAGE_METRIC.match(k)) and m.group(2) not in EXTRAS}

    keys = [core(r) for r in runs]
    if any(k != keys[0] for k in keys):
        differing = sorted(set.union(*keys) - set.intersection(*keys))
        raise ReportError(
            f"the runs logged different metrics ({', '.join(differing)}): compare runs of one kind"
        )


# ------------------------------------------------------------------------------- table
def rank(runs: list[Run], metric: str, mode: str | None = None) -> list[Run]:
    """Finished runs best first by ``metric`` (NaN and missing last), then the others in
    their order. ``mode``: ``min``/``max``, by default the metric's own (val/loss: min)."""
    lower_is_better = (mode or mode_of(metric) or "max") == "min"

    def key(run: Run) -> tuple[bool, float]:
        value = run.final.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return (True, 0.0)
        return (False, value if lower_is_better else -value)

    return sorted((r for r in runs if r.finished), key=key) + [r for r in runs if not r.finished]


def caption(metric: str, mode: str) -> str:
    better = "lower" if mode == "min" else "higher"
    return f"ranked by {metric} ({better} is better)"


def table_columns(runs: list[Run]) -> list[str]:
    columns = [
        f"{stage}/{name}"
        for name in metric_names(runs, lambda r: r.final)
        for stage in STAGES
        if any(f"{stage}/{name}" in r.final for r in runs)
    ]
    return columns + [c for c in TRAILING_COLUMNS if any(c in r.final for r in runs)]


def markdown_table(runs: list[Run], metric: str, mode: str | None = None) -> str:
    """The final metrics of each run, best first; the reasons of runs that did not finish."""
    columns = table_columns(runs)
    lines = ["| run | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for run in rank(runs, metric, mode):
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


# ----------------------------------------------------------------------------- figures
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=80)
    _pyplot().close(figure)
    return path


def plot_curves(runs: list[Run], path: Path) -> None:
    save(draw_curves(runs), path)


def _common_task(runs: list[Run]) -> str:
    ranked = [r for r in runs if r.finished] or runs
    return ranked[0].task if ranked else DEFAULT_TASK


def _loss_label(runs: list[Run], task: str) -> str:
    """What the loss is: cross-entropy, ½‖ŷ − y‖², or the binary task's ``task.loss``."""
    if task == "binary":
        losses = {str((r.config.get("task") or {}).get("loss")) for r in runs if r.config}
        if len(losses) == 1:
            return BINARY_LOSS_LABELS.get(losses.pop(), "loss")
    return LOSS_LABELS.get(task, "loss")


def _lines(runs: list[Run], groups: list[seed_stats.Group] | None, key: str):
    """(label, epochs, values, band, kept epoch) of each line: each run's curve, or each
    group's mean over its seeds with the band mean ± std (none for one seed)."""
    for run in runs if groups is None else []:
        if run.curves.get(key):
            epochs, values = zip(*run.curves[key], strict=True)
            yield run.label, epochs, values, None, run.final.get("best_epoch")
    for group in groups or []:
        epochs, stats = seed_stats.mean_curve(group, key)  # the epochs every seed reached
        if epochs:
            label = f"{group.label} (n={len(group.runs)})"
            yield label, epochs, [s.mean for s in stats], seed_stats.band(stats), None


def draw_curves(runs: list[Run], groups: list[seed_stats.Group] | None = None):
    """One row per metric (loss first), columns train and val, one line per run and a dot
    at each run's kept epoch (``best_epoch``); with ``groups``, one line per group instead."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    names = metric_names(runs, lambda r: [k for k in r.curves if not k.startswith("test/")])
    names = names or ["loss"]
    task = _common_task(runs)
    loss_label = _loss_label(runs, task)
    fig, axes = plt.subplots(
        len(names), 2, figsize=(10, 3.5 * len(names)), sharex=True, squeeze=False
    )
    for row, name in zip(axes, names, strict=True):
        for ax, stage in zip(row, ("train", "val"), strict=True):
            key = f"{stage}/{name}"
            plotted: list[float] = []
            for label, epochs, values, band, best in _lines(runs, groups, key):
                plotted += values
                (line,) = ax.plot(epochs, values, label=label, linewidth=1.5)
                if band:
                    ax.fill_between(epochs, *band, color=line.get_color(), alpha=0.2)
                if best in epochs:  # the epoch whose weights the run kept (and tested)
                    ax.plot(
                        best, values[epochs.index(best)], "o", color=line.get_color(), markersize=6
                    )
            if not ax.lines and any(r.curves for r in runs):
                fig.delaxes(ax)  # e.g. train/penalty has no val/penalty
                continue
            kind = "mean ± std over seeds" if groups else "dot: the kept epoch"
            ax.set_title(f"{stage} {name} ({kind})")
            ax.grid(alpha=0.3)
            finite = [v for v in plotted if math.isfinite(v)]
            label = loss_label if name == "loss" else METRIC_LABELS.get(name, name)
            if name in LOG_SCALE and finite and min(finite) > 0:
                ax.set_yscale("log")
                label += " (log scale)"
            ax.set_ylabel(label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    handles, labels = next(
        (ax.get_legend_handles_labels() for ax in fig.axes if ax.lines), ([], [])
    )
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=8)
    fig.tight_layout(rect=(0, 0.2 / len(names), 1, 1))  # room for the legend
    return fig


def draw_diagnostics(runs: list[Run]):
    """Two panels: each layer's gradient norm and activation variance (log y), at the
    first epoch or step that has them, one line per run that logged them."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (family, title) in zip(axes, DIAGNOSTICS.items(), strict=True):
        shown = [r for r in runs if r.diagnostics.get(family)]
        for run in shown:
            layers, values = zip(*run.diagnostics[family], strict=True)
            ax.plot(layers, values, "o-", label=run.label, linewidth=1.5, markersize=4)
        when = sorted({r.diagnostics_at for r in shown if r.diagnostics_at})
        ax.set_title(title + (f" ({when[0]})" if len(when) == 1 else " (first logged)"))
        ax.set_yscale("log")
        ax.set_xlabel("layer (0 = nearest the input)")
        ax.set_ylabel(("gradient norm" if family == "grad_norm" else "variance") + " (log scale)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    handles, labels = next(
        (ax.get_legend_handles_labels() for ax in fig.axes if ax.lines), ([], [])
    )
    fig.legend(handles, labels, loc="lower center", ncol=min(3, max(1, len(labels))), fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


# ------------------------------------------------------------------------------ report
def make_report(
    paths: list[Path],
    out: Path | None = None,
    metric: str | None = None,
    mode: str | None = None,
    group_by: list[str] | None = None,
) -> list[Path]:
    """Write ``table.md``, ``curves.png``, (when a run logged diagnostics) ``diagnostics.png``
    and (with ``group_by``) ``groups.md`` and ``curves_by_group.png`` into ``out``; the paths
    written, in that order."""
    runs = load_runs(paths)
    check_same_task_and_data(runs)
    metric, mode = resolve_ranking(runs, metric, mode)
    check_comparable(runs, metric)
    check_curves(runs)
    # refused before anything is written
    groups = seed_stats.group_runs(runs, group_by) if group_by else None
    out = out or (paths[0] / "report")
    try:
        out.mkdir(parents=True, exist_ok=True)
        return write_report(runs, out, metric, mode, groups, paths)
    except OSError as err:  # a read-only file system, a full disk, a file in the way
        raise ReportError(f"cannot write the report into {out}: {err.strerror or err}") from None


def write_report(runs, out: Path, metric: str, mode: str | None, groups, paths) -> list[Path]:
    table = out / "table.md"
    missing = jobs_without_metrics(paths)
    note = (
        f"\n{len(missing)} job(s) left no metrics.json (killed before the end, not ranked): "
        + ", ".join(str(p) for p in missing)
        + "\n"
        if missing
        else ""
    )
    table.write_text(caption(metric, mode) + "\n\n" + markdown_table(runs, metric, mode) + note)
    written = [table, save(draw_curves(runs), out / "curves.png")]
    if any(r.diagnostics for r in runs):
        written.append(save(draw_diagnostics(runs), out / "diagnostics.png"))
    if groups:
        columns = [c for c in table_columns(runs) if c not in TRAILING_COLUMNS]
        (out / "groups.md").write_text(seed_stats.markdown(groups, metric, mode, columns))
        written += [out / "groups.md", save(draw_curves(runs, groups), out / "curves_by_group.png")]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m descentlab.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="a multirun dir, or run dirs")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write (default: FIRST_DIR/report)"
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="rank runs by this final metric (default: the runs' objective, val/acc for "
        "classification and binary, val/loss for regression)",
    )
    parser.add_argument(
        "--mode",
        choices=("min", "max"),
        default=None,
        help="lower (min) or higher (max) is better (default: the objective's, or the metric's)",
    )

    def group_keys(text: str) -> list[str]:
        keys = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
        if not keys:  # --group-by '' was silently no grouping
            raise argparse.ArgumentTypeError("needs at least one key, e.g. --group-by optimizer")
        return keys

    parser.add_argument(
        "--group-by",
        type=group_keys,
        default=None,
        metavar="KEY[,KEY]",
        help="group runs that differ only in seed by these keys (optimizer, data.train_fraction) "
        "and write groups.md (mean ± std, SE, paired differences) and curves_by_group.png",
    )
    args = parser.parse_args(argv)
    try:
        written = make_report(args.dirs, args.out, args.metric, args.mode, args.group_by)
    except ReportError as err:
        print(f"descentlab.report: error: {err}", file=sys.stderr)
        return 1
    try:
        for path in written:
            if path.suffix == ".md":
                print(path.read_text())
        print("wrote " + ", ".join(map(str, written[:-1])) + f" and {written[-1]}")
    except BrokenPipeError:  # `... | head`: the reader left; the files are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
