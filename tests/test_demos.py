"""notebooks/demos.py: every command a notebook shows next to a figure runs as written (in a
short form: fewer epochs and draws) and writes its figure, and the figure's cell runs that
same command."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.cli import ROOT

NOTEBOOKS = [
    ROOT / "notebooks" / f"{stem}.ipynb"
    for stem in ("01_backprop", "02_optimizers", "03_initialization")
]
DEMOS = ROOT / "notebooks" / "demos.py"
COMMAND = re.compile(r"`python notebooks/demos\.py ([^`]+)`")
DEMO_CALL = re.compile(r"""\bdemo\(\s*f?["']([^"']+)["']""")

# the short form of a command: its slow options made small (the rest as the notebook shows it)
SHORT = {
    "softmax-pitfall": {"--epochs": "1"},
    "minibatch": {"--draws": "50", "--repeats": "1"},
    "train-curves": {"--epochs": "1"},
    "deep-linear-train": {"--epochs": "1"},
    "sweep": {"--points": "6"},
    "init-schemes": {"--depth": "5"},
}
SLOW = {"train-curves", "deep-linear-train"}  # five training runs each


def shown_commands(path: Path) -> list[str]:
    book = nbformat.read(path, as_version=4)
    return [m for c in book.cells if c.cell_type == "markdown" for m in COMMAND.findall(c.source)]


def demo_calls(path: Path) -> list[str]:
    """The command lines the notebook's code cells run (implicit string concatenation joined)."""
    book = nbformat.read(path, as_version=4)
    calls = []
    for cell in book.cells:
        if cell.cell_type != "code" or "demo(" not in cell.source:
            continue
        joined = re.sub(r"""["']\s*\n\s*f?["']""", "", cell.source)  # "a "\n "b" -> "a b"
        calls += DEMO_CALL.findall(joined)
    return calls


def options(words: list[str]) -> dict[str, list[str]]:
    """--key value... pairs of a command line (a flag without values maps to [])."""
    out, key = {}, None
    for word in words:
        if word.startswith("--"):
            key = word
            out[key] = []
        elif key is not None:
            out[key].append(word)
    return out


ALL = [(p.stem, command) for p in NOTEBOOKS for command in shown_commands(p)]


def test_every_figure_has_its_command_next_to_it():
    """The commands in a notebook's text and the demo() calls of its cells are the same
    commands in the same order; a call's literal options are the command's (without --out)."""
    for path in NOTEBOOKS:
        shown, called = shown_commands(path), demo_calls(path)
        assert shown, f"{path.name} shows no command"
        assert [c.split()[0] for c in shown] == [c.split()[0] for c in called], path.name
        for text, call in zip(shown, called, strict=True):
            want = options(shlex.split(text))
            want.pop("--out", None)
            got = options(shlex.split(call))
            for key, values in got.items():
                if any("{" in v for v in values):  # an f-string value (FAST epochs, RUNS)
                    continue
                assert want.get(key) == values, (path.name, text, call, key)


def test_every_command_writes_a_figure_it_says_so():
    for stem, command in ALL:
        assert "--out " in command, f"{stem}: `{command}` writes no figure"


def short_form(command: str, tmp_path: Path) -> list[str]:
    words = shlex.split(command)
    name = words[0]
    opts = options(words[1:])
    for key, value in SHORT.get(name, {}).items():
        if key in opts:
            opts[key] = [value]
    opts["--out"] = [str(tmp_path / "fig.png")]
    if name in ("train-curves", "deep-linear-train", "deep-linear-grads"):
        opts["--runs"] = [str(tmp_path / "runs")]
    return [name, *(w for key, values in opts.items() for w in (key, *values))]


def run_demo(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMOS), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"},
    )


@pytest.mark.parametrize(
    "stem,command",
    [
        pytest.param(stem, c, marks=[pytest.mark.slow] if c.split()[0] in SLOW else [])
        for stem, c in ALL
    ],
    ids=[f"{stem}:{c.split()[0]}-{i}" for i, (stem, c) in enumerate(ALL)],
)
def test_shown_command_runs_and_writes_its_figure(stem, command, tmp_path):
    proc = run_demo(short_form(command, tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    figure = tmp_path / "fig.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure written to {figure}" in proc.stdout
    assert re.search(r"\d", proc.stdout.replace(str(figure), "")), "prints no numbers"


def test_worked_example_prints_every_node_value_and_gradient():
    from descentlab.autograd.worked_example import intermediates_by_hand

    point = {"w": 0.5, "b": -0.3, "x": 1.2, "y": 1.0, "lam": 0.1}
    proc = run_demo(["worked-example", *(f"--{k}={v}" for k, v in point.items())])
    assert proc.returncode == 0, proc.stderr
    printed = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("ℒ", "r", "l", "u", "z", "w", "b"):
            printed["L" if parts[0] == "ℒ" else parts[0]] = (float(parts[1]), float(parts[2]))
    hand = intermediates_by_hand(**point)
    assert set(printed) == set(hand)
    for node, (_, grad) in printed.items():
        assert grad == pytest.approx(hand[node], abs=1e-6)
    assert printed["w"][0] == 0.5 and printed["b"][0] == -0.3


def test_surface_reports_momentum_below_sgd_on_the_ravine():
    proc = run_demo(
        ["surface", "--surface", "ravine", "--optimizer", "sgd:lr=0.075", "momentum:lr=0.15,mu=0.5"]
    )
    assert proc.returncode == 0, proc.stderr
    f = [float(v) for v in re.findall(r"f = (\S+)", proc.stdout)]
    assert len(f) == 2 and f[1] < 1e-4 * f[0]


def test_sigmoid_deep_reports_a_vanishing_first_layer():
    proc = run_demo(["sigmoid-deep", "--depth", "10", "--width", "256"])
    assert proc.returncode == 0, proc.stderr
    ratios = dict(re.findall(r"^(\w+)\s.*first/last = (\S+),", proc.stdout, re.M))
    assert float(ratios["sigmoid"]) < 1e-5 and 0.5 < float(ratios["identity"]) < 2


def test_a_bad_optimizer_is_a_one_line_error():
    proc = run_demo(["surface", "--optimizer", "nesterov:lr=0.1"])
    assert proc.returncode != 0
    assert "nesterov:lr=0.1" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_every_command():
    proc = run_demo(["--help"])
    assert proc.returncode == 0
    used = {c.split()[0] for _, c in ALL}
    assert used <= set(re.findall(r"^\s{4}([a-z][a-z-]+)\s", proc.stdout, re.M))


def test_demo_in_process_returns_what_the_cli_prints(capsys):
    """A notebook cell's demo("...") prints the same numbers as the command line."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebook_demos", DEMOS)
    demos = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = demos  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(demos)
    finally:
        del sys.modules[spec.name]
    result = demos.demo("bias-correction --mu 0.9 --steps 40")
    in_process = capsys.readouterr().out
    proc = run_demo(["bias-correction", "--mu", "0.9", "--steps", "40"])
    assert in_process.strip() == proc.stdout.strip()
    assert result["peak"][1] == 21 and math.isclose(result["v"][0], 0.1)
