"""Seed statistics: runs grouped by their config, each group's mean and how noisy it is.

``python -m descentlab.report DIR --group-by optimizer[,data.train_fraction]`` groups the
runs by the values of those keys and reports each group over its seeds. A key's value in a
run is its override (``.hydra/overrides.yaml``), else the config group Hydra chose
(``hydra.runtime.choices`` of ``.hydra/hydra.yaml``: the default ``optimizer``), else the
value in ``.hydra/config.yaml``. The runs of one group must differ in ``seed`` only; a run
that also differs in another override, or repeats a seed, is refused in one line.

Per group G and final metric m (``train/``, ``val/``, ``test/``), over the n finished runs
of G, x_i = m of run i:

    mean   x̄ = (1/n) Σ x_i
    std    s = √( Σ (x_i − x̄)² / (n − 1) )        sample std (ddof=1); none for n = 1
    SE     s / √n                                 the standard error of x̄

Paired difference of a group B against the baseline A, the best group (the first row of
the ranking; with more than two groups every other group is paired against it), over the
k seeds both ran (a seed only one of them ran is ignored):

    d_s  = m(B, s) − m(A, s)
    d̄    = (1/k) Σ d_s,      SE(d̄) = std(d, ddof=1) / √k
    wins = #{s : B is better than A at seed s}   (lower for a ``min`` metric, higher for ``max``)

and the difference *exceeds noise* when |d̄| > 2·SE(d̄) (roughly: a 95% interval for the mean
difference excludes 0, if the d_s are normal), else it is *within noise*. Pairing by seed
cancels what a seed does to both groups alike (its data split, initial weights, batch
order), so the paired SE is usually smaller than the groups' own SEs suggest.

Runs that did not finish (``descentlab.run.FINISHED``) are left out of every statistic and
counted per group. Torch-free, like the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from descentlab.errors import ReportError
from descentlab.rules import mode_of


class RunLike(Protocol):
    """What is read of a run (``descentlab.report.Run``): its dir, overrides, unresolved
    config, final metrics, per-epoch curves and whether it finished."""

    path: Path
    overrides: list[str]
    config: dict
    final: dict
    curves: dict[str, list[tuple[int, float]]]

    @property
    def finished(self) -> bool: ...


MISSING = object()  # a key a run does not set at all (null is a value: "null")


# ---------------------------------------------------------------------------- the math
@dataclass(frozen=True)
class Stats:
    """n values: their mean, sample std (ddof=1) and standard error std/√n; std and SE are
    None for n < 2, everything is None for n = 0."""

    n: int
    mean: float | None
    std: float | None
    se: float | None


def describe(values: Sequence[float]) -> Stats:
    """x̄ = Σx/n, s = √(Σ(x − x̄)²/(n − 1)), SE = s/√n."""
    n = len(values)
    if n == 0:
        return Stats(0, None, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Stats(1, mean, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    return Stats(n, mean, std, std / math.sqrt(n))


@dataclass(frozen=True)
class Paired:
    """B − A over the seeds both ran: their number, the mean difference d̄, its SE, and on how
    many seeds B was better (None when which way is better is not known)."""

    shared: int
    mean: float | None
    se: float | None
    wins: int | None

    @property
    def verdict(self) -> str:
        """``exceeds noise`` when |d̄| > 2·SE(d̄), else ``within noise`` (no pipe: a table cell)."""
        if self.se is None or self.mean is None or math.isnan(self.mean):
            return "no verdict: fewer than 2 shared seeds" if self.shared < 2 else "no verdict"
        return "exceeds noise" if abs(self.mean) > 2 * self.se else "within noise"


def paired_difference(a: dict[str, float], b: dict[str, float], mode: str | None) -> Paired:
    """d_s = b[s] − a[s] over the seeds s in both; d̄, SE(d̄) = std(d, ddof=1)/√k and the
    seeds where b is better (``mode`` min: lower, max: higher; None: not counted)."""
    seeds = [s for s in a if s in b]
    d = [b[s] - a[s] for s in seeds]
    stats = describe(d)
    wins = None if mode not in ("min", "max") else sum(x < 0 if mode == "min" else x > 0 for x in d)
    return Paired(len(seeds), stats.mean, stats.se, wins)


# -------------------------------------------------------------------- what a run was set to
def _parse(raw: str):
    """An override's value as the config holds it: ``0.50`` and ``5e-1`` are the float 0.5,
    ``[256,128]`` a list, ``null`` None; anything else the string as written."""
    import yaml

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 as a string
        except ValueError:
            return value
    return value


def canonical(value) -> str:
    """One spelling per value, so that an override and a config value compare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # 1.0 stays 1.0 (1 is an int to Hydra), 1e-3 is 0.001
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


def overrides_of(run: RunLike) -> dict[str, str]:
    """``key -> value`` of the run's overrides; ``+key``/``++key`` are ``key``, ``~key`` is
    the key deleted; Hydra's own keys (``hydra.*``) are left out."""
    out: dict[str, str] = {}
    for override in run.overrides:
        key, _, raw = override.partition("=")
        deleted = key.startswith("~")
        key = key.lstrip("+~")
        if not key.startswith("hydra."):
            out[key] = "~deleted" if deleted else canonical(_parse(raw))
    return out


def choices_of(run: RunLike) -> dict[str, str]:
    """The config group Hydra chose for each group (``.hydra/hydra.yaml``); {} without it."""
    path = run.path / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        hydra = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ReportError(f"{path} cannot be read ({str(err).splitlines()[0]})") from None
    runtime = (((hydra or {}).get("hydra") or {}).get("runtime")) or {}
    choices = runtime.get("choices") or {}
    return {str(k): canonical(v) for k, v in choices.items()}


@dataclass
class Setting:
    """What one run was set to: its overrides, Hydra's group choices and its config."""

    run: RunLike
    overrides: dict[str, str]
    choices: dict[str, str]

    def value(self, key: str):
        """The override, else the chosen config group, else the config's value; else MISSING."""
        if key in self.overrides:
            return self.overrides[key]
        if key in self.choices:
            return self.choices[key]
        node = self.run.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return MISSING
            node = node[part]
        return canonical(node)


# ------------------------------------------------------------------------------- groups
@dataclass
class Group:
    """The runs that share the values of the ``--group-by`` keys: the finished ones (one per
    seed) enter the statistics, the others are only counted."""

    values: dict[str, str]
    runs: list[RunLike] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)  # of ``runs``, in order
    left_out: list[RunLike] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.values.items())

    def by_seed(self, metric: str) -> dict[str, float]:
        """``seed -> value`` of the metric in each finished run that has it."""
        return {
            seed: float(run.final[metric])
            for seed, run in zip(self.seeds, self.runs, strict=True)
            if _is_number(run.final.get(metric))
        }

    def stats(self, metric: str) -> Stats:
        return describe(list(self.by_seed(metric).values()))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _where(settings: list[Setting], key: str) -> str:
    """``0.1 in DIR/0, 0.5 in DIR/3``: each value of ``key`` and the first run that has it."""
    first: dict[str, Path] = {}
    for setting in settings:
        value = setting.value(key)
        first.setdefault("unset" if value is MISSING else value, setting.run.path)
    return ", ".join(f"{value} in {path}" for value, path in first.items())


def group_runs(runs: list[RunLike], keys: list[str]) -> list[Group]:
    """The runs grouped by the values of ``keys``, in the order the groups first appear.
    Refused in one line: an unknown key (naming the keys the runs set), ``seed`` as a key,
    a run without a seed, two runs of a group that differ in another key, and two finished
    runs of a group with one seed (an unfinished rerun of a seed is only counted)."""
    if "seed" in keys:
        raise ReportError("--group-by seed: a group's runs are its seeds; group by another key")
    settings = [Setting(run, overrides_of(run), choices_of(run)) for run in runs]
    for key in keys:
        unset = [s.run.path for s in settings if s.value(key) is MISSING]
        if len(unset) == len(settings):
            overridden = sorted({k for s in settings for k in s.overrides} - {"seed"})
            groups = sorted({k for s in settings for k in s.choices if not k.startswith("hydra")})
            raise ReportError(
                f"--group-by {key}: no run sets {key!r}; the runs override "
                f"{', '.join(overridden) or 'nothing'}; their config groups are "
                f"{', '.join(groups) or 'unknown (no .hydra/hydra.yaml)'}; "
                "any key of .hydra/config.yaml works too"
            )
        if unset:
            raise ReportError(
                f"--group-by {key}: {unset[0]} does not set {key!r} (no override, no "
                ".hydra/config.yaml value): report it separately"
            )
    by_values: dict[tuple[str, ...], list[Setting]] = {}
    for setting in settings:
        by_values.setdefault(tuple(setting.value(k) for k in keys), []).append(setting)
    return [
        _group(dict(zip(keys, values, strict=True)), members, keys)
        for values, members in by_values.items()
    ]


def _group(values: dict[str, str], members: list[Setting], keys: list[str]) -> Group:
    group = Group(values)
    other = sorted({k for s in members for k in s.overrides} - {"seed", *keys})
    for key in other:
        if len({str(s.value(key)) for s in members}) > 1:
            raise ReportError(
                f"runs of group {group.label} differ in {key} ({_where(members, key)}); "
                "add it to --group-by"
            )
    seen: dict[str, Path] = {}
    for setting in members:
        run, seed = setting.run, setting.value("seed")
        if seed is MISSING:
            raise ReportError(
                f"{run.path} records no seed (no seed= override, no .hydra/config.yaml): "
                "--group-by pairs runs by their seed"
            )
        if not run.finished:
            group.left_out.append(run)
            continue
        if seed in seen:
            raise ReportError(
                f"runs of group {group.label} repeat seed={seed} ({seen[seed]} and {run.path}): "
                "report one of them"
            )
        seen[seed] = run.path
        group.runs.append(run)
        group.seeds.append(seed)
    return group


def rank_groups(groups: list[Group], metric: str, mode: str) -> list[Group]:
    """Best first by the mean of ``metric`` in its ``mode``; a NaN mean or a group without
    finished runs last."""

    def key(group: Group) -> tuple[bool, float]:
        mean = group.stats(metric).mean
        if mean is None or math.isnan(mean):
            return (True, 0.0)
        return (False, mean if mode == "min" else -mean)

    return sorted(groups, key=key)


# ------------------------------------------------------------------------------ groups.md
def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or 1e-3 <= abs(value) < 1e4 or not math.isfinite(value):
        return f"{value:.4f}"
    return f"{value:.3e}"


def markdown(groups: list[Group], metric: str, mode: str, columns: list[str]) -> str:
    """The groups ranked (mean ± std and SE of ``metric``, then of each of ``columns``: the
    other final metrics), then each group's paired difference against the best one."""
    groups = rank_groups(groups, metric, mode)
    columns = [metric] + [c for c in columns if c != metric]
    better = "lower" if mode == "min" else "higher"
    lines = [
        f"groups by {', '.join(groups[0].values)}, ranked by the mean of {metric} ({better} is "
        "better); each cell: mean ± std (sample, ddof=1) over the group's finished runs, one "
        "per seed; SE = std/√n; — where n < 2",
        "",
        "| group | n | unfinished (left out) | "
        + " | ".join(f"{c} | {c} SE" for c in columns)
        + " |",
        "|---|---|---|" + "---|---|" * len(columns),
    ]
    for group in groups:
        cells = []
        for column in columns:
            stats = group.stats(column)
            n = f" (n={stats.n})" if stats.n != len(group.runs) else ""
            cells += [f"{_fmt(stats.mean)} ± {_fmt(stats.std)}{n}", _fmt(stats.se)]
        lines.append(
            f"| {group.label} | {len(group.runs)} | {len(group.left_out)} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines + [""] + paired_section(groups, columns, metric, mode)) + "\n"


def paired_section(groups: list[Group], columns: list[str], metric: str, mode: str) -> list[str]:
    """``## Paired differences``: each group B after the best A, d_s = B − A per metric."""
    if len(groups) < 2:
        return ["## Paired differences", "", "one group: nothing to compare"]
    base = groups[0]
    lines = [
        f"## Paired differences against {base.label} (the best group)",
        "",
        f"d_s = metric(group, seed s) − metric({base.label}, seed s) over the seeds both ran "
        "(the others are ignored; shared seeds: k of the group's n); d̄ their mean, SE = "
        "std(d, ddof=1)/√k; wins: seeds where the group is better; the difference exceeds "
        "noise when |d̄| > 2·SE, else it is within noise",
        "",
        "| group | metric | shared seeds | d̄ | SE | wins | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for group in groups[1:]:
        for column in columns:
            direction = mode if column == metric else mode_of(column, None)
            paired = paired_difference(base.by_seed(column), group.by_seed(column), direction)
            wins = "—" if paired.wins is None else f"{paired.wins} of {paired.shared}"
            lines.append(
                f"| {group.label} | {column} | {paired.shared} of {len(group.runs)} | "
                f"{_fmt(paired.mean)} | {_fmt(paired.se)} | {wins} | {paired.verdict} |"
            )
    return lines


# ---------------------------------------------------------------------- curves_by_group.png
def mean_curve(group: Group, key: str) -> tuple[list[int], list[Stats]]:
    """The epochs every finished run of the group has for ``key`` and, at each, the Stats of
    the runs' values. An epoch some run lacks (it stopped early) is dropped: a mean over
    fewer seeds would jump where a seed leaves."""
    curves = [dict(run.curves.get(key, [])) for run in group.runs]
    if not curves or not all(curves):
        return [], []
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    return epochs, [describe([c[e] for c in curves]) for e in epochs]


def band(stats: list[Stats]) -> tuple[list[float], list[float]] | None:
    """mean − std and mean + std at each epoch; None where a std is not defined (n = 1)."""
    if any(s.std is None for s in stats):
        return None
    return [s.mean - s.std for s in stats], [s.mean + s.std for s in stats]
