"""The notebooks' exercises: every checker accepts the worked answer in notebooks/solutions/,
rejects a wrong one with an explanation, and says "not answered yet" (without raising) to
the ``None`` a notebook ships with."""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import nbformat
import pytest

from helpers.cli import ROOT

NOTEBOOKS = ROOT / "notebooks"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


exercises = load(NOTEBOOKS / "exercises.py", "notebook_exercises")
SOLUTIONS = {
    stem: load(NOTEBOOKS / "solutions" / f"{stem}.py", f"solution_{stem}")
    for stem in ("01_backprop", "02_optimizers", "03_initialization", "04_generalization")
}
s01, s02, s03, s04 = SOLUTIONS.values()

# checker: (the solution's arguments, wrong arguments, a phrase the explanation must contain)
CASES = {
    "check_worked_gradient": ((s01.dL_dw_answer,), (0.0544,), "only the path through z"),
    "check_tanh": ((s01.my_tanh,), (lambda a: a.sigmoid(),), "the value is wrong"),
    "check_softmax_floor": ((s01.softmax_floor_answer,), (math.log(10),), "uniform prediction"),
    "check_momentum_escape": ((s02.mu_answer,), (0.9,), "too slow"),
    "check_torch_lr": ((s02.torch_lr_answer,), (0.1,), "sums the gradients"),
    "check_first_moment": ((s02.v5_answer,), (2.0,), "v̂_5"),
    "check_variance_prediction": (
        (s03.variance_layer, s03.variance_answer),
        (5, 1.44),
        "factor of one layer",
    ),
    "check_xavier_std": ((s03.xavier_std_answer,), (2 / 400,), "square root"),
    "check_depth_std": ((s03.depth_std_answer,), (0.1,), "too large"),
    "check_label_noise_share": ((s04.wrong_share,), (0.5,), "land on the true class"),
    "check_l2_as_weight_decay": ((s04.torch_weight_decay,), (0.02,), "has gradient 2λw"),
    "check_dropout_eval_factor": ((s04.eval_factor,), (1 / 0.7,), "training-time factor"),
    "check_paired_verdict": ((s04.verdict,), ("effect",), "standard error"),
}


def test_every_checker_has_a_case():
    assert set(CASES) == set(exercises.CHECKERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_accepts_the_solution(name, capsys):
    right, _, _ = CASES[name]
    assert exercises.CHECKERS[name](*right) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_rejects_a_wrong_answer_and_says_why(name, capsys):
    _, wrong, phrase = CASES[name]
    assert exercises.CHECKERS[name](*wrong) is False
    out = capsys.readouterr().out
    assert "correct" not in out.splitlines()
    assert phrase in out


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_on_an_unanswered_exercise(name, capsys):
    right, _, _ = CASES[name]
    args = (*right[:-1], None)  # the answer is the last argument
    assert exercises.CHECKERS[name](*args) is False
    assert "not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0.5", float("nan"), [1.0]])
def test_a_number_checker_refuses_what_is_not_a_number(bad, capsys):
    assert exercises.check_first_moment(bad) is False
    assert "should be a" in capsys.readouterr().out


def test_momentum_escape_explains_an_unstable_mu(capsys):
    assert exercises.check_momentum_escape(0.1) is False
    assert "does not settle" in capsys.readouterr().out


def test_tanh_checker_survives_a_function_that_raises(capsys):
    def broken(a):
        raise ValueError("oops")

    assert exercises.check_tanh(broken) is False
    assert "raised ValueError" in capsys.readouterr().out


def _exercise_calls(path: Path) -> list[tuple[str, list]]:
    """(checker, its arguments: a variable's name as str, a constant as (value,)) for every
    check_* call in a notebook."""
    book = nbformat.read(path, as_version=4)
    calls = []
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id.startswith("check_")
            ):
                args = [
                    a.id if isinstance(a, ast.Name) else (ast.literal_eval(a),) for a in node.args
                ]
                calls.append((node.func.id, args))
    return calls


@pytest.mark.parametrize("stem", sorted(SOLUTIONS))
def test_notebook_exercises_match_their_solutions(stem):
    """Each notebook has 2-4 exercises; each answer variable it checks ships as None in the
    notebook and is defined in the solution file, which the checker accepts."""
    path = NOTEBOOKS / f"{stem}.ipynb"
    calls = _exercise_calls(path)
    assert 2 <= len(calls) <= 4
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    solution = SOLUTIONS[stem]
    for checker, args in calls:
        assert checker in exercises.CHECKERS
        names = [a for a in args if isinstance(a, str)]
        assert names, f"{stem}: {checker} is called without an answer variable"
        for name in names:
            assert f"{name} = None" in source, f"{stem}: {name} should ship as None"
            assert hasattr(solution, name), f"solutions/{stem}.py has no {name}"
        values = [getattr(solution, a) if isinstance(a, str) else a[0] for a in args]
        assert exercises.CHECKERS[checker](*values) is True
