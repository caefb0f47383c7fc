"""The package's shape, checked: layers import downwards only, no import cycle, a run that
reads as its phases, one definition per class, no private name borrowed across modules,
and the optional extras refused in one line when missing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from helpers.cli import ROOT, one_error_line, run_cli

SRC = ROOT / "src"
PACKAGE = SRC / "descentlab"
# The domain layer: what a lecture's experiment is made of. It may not reach up into the
# layers that run, store or configure experiments.
DOMAIN = (
    "data",
    "models",
    "tasks",
    "optim",
    "autograd",
    "callbacks",
    "init",
    "torchfile",
    "errors",
)
UPPER = ("run", "storage", "config", "api", "report")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """The descentlab modules ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module_name(path):
                found.add(name)
    return found


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_domain_layer_never_imports_the_run_storage_or_config_layers():
    upward = {
        (m, i)
        for m, imported in GRAPH.items()
        if layer(m) in DOMAIN
        for i in imported
        if layer(i) in UPPER
    }
    assert not upward, f"imports against the layering: {sorted(upward)}"


def test_the_package_has_no_import_cycle():
    assert not cycles(GRAPH), cycles(GRAPH)


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_run_reads_as_its_phases_and_eval_imports_nothing_from_it():
    assert len((PACKAGE / "run" / "train.py").read_text().splitlines()) < 200
    assert "descentlab.run.train" not in GRAPH["descentlab.run.evaluate"]


def test_no_private_name_is_imported_across_modules():
    borrowed = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("descentlab"):
                borrowed += [(name, a.name) for a in node.names if a.name.startswith("_")]
    assert not borrowed, borrowed


def test_each_class_is_defined_once():
    defined: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                defined.setdefault(node.name, []).append(name)
    twice = {cls: where for cls, where in defined.items() if len(where) > 1}
    assert not twice, twice


def test_every_user_error_is_a_descentlab_error():
    import inspect

    import descentlab.errors as errors

    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    assert all(issubclass(c, errors.DescentlabError) for c in classes)


WITHOUT = "import runpy, sys; sys.modules[{module!r}] = None; sys.argv = ['train.py', *sys.argv[1:]]; runpy.run_path({script!r}, run_name='__main__')"


@pytest.mark.smoke
@pytest.mark.parametrize(
    "module, args, extra",
    [
        ("wandb", ["logger=wandb"], "wandb"),
        ("tensorboard", ["logger=tensorboard"], "tensorboard"),
        (
            "hydra_plugins.hydra_submitit_launcher",
            ["-m", "hydra/launcher=submitit_local", "seed=1,2"],
            "slurm",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, module, args, extra):
    code = WITHOUT.format(module=module, script=str(ROOT / "train.py"))
    proc = run_cli(
        [*args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"],
        check=False,
        script=None,
        module=None,
        python_code=code,
    )
    line = one_error_line(proc)
    assert f"pip install 'descentlab[{extra}]'" in line, line


def test_every_module_has_test_files_in_the_index():
    from index import module_of, tests_for

    untested = [module_of(p) for p in PACKAGE.rglob("*.py") if not tests_for(module_of(p))]
    assert not untested, untested
    adam = [t.name for t in tests_for("descentlab.optim.adam")]
    assert "test_optim.py" in adam and "test_autograd_ops.py" not in adam, adam


# -- one rule per check ---------------------------------------------------------------
def _classes_by_table():
    from descentlab.data import (
        DigitsDataModule,
        ImageFolderDataModule,
        TeacherDataModule,
        TensorDataModule,
    )
    from descentlab.models.backbone import Backbone
    from descentlab.models.mlp import MLP
    from descentlab.models.module import TaskModule
    from descentlab.optim import SGD, Adam, Adaptive, Momentum
    from descentlab.tasks import Binary, Classification, Regression

    return {
        "optimizer": [SGD, Momentum, Adaptive, Adam],
        "model": [TaskModule],
        "task": [Classification, Regression, Binary],
        "model.net": [MLP, Backbone],
        "data": [TensorDataModule, DigitsDataModule, ImageFolderDataModule, TeacherDataModule],
    }


def test_each_range_rule_has_one_definition_shared_by_pre_check_and_constructor():
    """The torch-free pre-check's table and each constructor's signature hold the same
    rule object, and every rule of a table is declared by some class."""
    from descentlab.rules import SCOPE, TABLES, rules_of

    declared_somewhere = {where: set() for where in TABLES}
    for where, classes in _classes_by_table().items():
        table = TABLES[where]
        for cls in classes:
            rules = rules_of(cls)
            assert rules, f"{cls.__name__} declares no rule (a hint that does not resolve?)"
            for name, rule in rules.items():
                if name not in table:
                    continue
                # Adaptive's scope may not be null; the table's is SCOPE with null accepted
                expected = SCOPE if (cls.__name__, name) == ("Adaptive", "scope") else table[name]
                assert rule is expected, (
                    f"{cls.__name__}.{name}: {rule} is not {where}'s {table[name]}"
                )
                declared_somewhere[where].add(name)
    undeclared = {w: sorted(set(TABLES[w]) - names) for w, names in declared_somewhere.items()}
    # momentum/dampening: torch.optim.SGD's names, checked by the table only
    undeclared["optimizer"] = [
        k for k in undeclared["optimizer"] if k not in ("momentum", "dampening")
    ]
    assert not any(undeclared.values()), undeclared


def test_domain_classes_name_their_parameter_not_a_config_key():
    """A class raises ParameterError("lr", ...); the run adds the key the user wrote."""
    calls = []
    for name, path in MODULES.items():
        if layer(name) not in DOMAIN or name == "descentlab.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConfigError":
                first = node.args[0] if node.args else None
                key = first.value if isinstance(first, ast.Constant) else ast.unparse(first)
                calls.append((name, key))
    # the one cross-group check: a batch of one sample reaching BatchNorm names data.batch_size
    assert calls == [("descentlab.models.module", "data.batch_size")], calls


def test_a_constructor_refuses_a_bad_value_naming_its_parameter():
    import torch

    from descentlab.errors import ParameterError
    from descentlab.optim import Momentum

    with pytest.raises(ParameterError, match=r"^mu=1\.0 is invalid: a number in \[0, 1\)$"):
        Momentum([torch.zeros(2, requires_grad=True)], mu=1.0)


# -- moving modules must not break existing runs ----------------------------------------
# tests/data/pre_move_last.ckpt: `python train.py model.net.hidden_dims=[8] trainer.max_epochs=2
# callbacks.early_stopping=null logger=none` at commit 9a42524, before the modules moved into
# config/, run/ and storage/. Its recorded config names model/data/optimizer/init by _target_.
PRE_MOVE = ROOT / "tests" / "data" / "pre_move_last.ckpt"


def test_a_checkpoint_written_before_the_move_loads_without_other_arguments():
    from descentlab.models.classifier import Classifier

    module = Classifier.load_from_checkpoint(str(PRE_MOVE))
    assert [m.out_features for m in module.net if hasattr(m, "out_features")] == [8, 10]


@pytest.mark.slow
def test_a_checkpoint_written_before_the_move_resumes_after_it(tmp_path):
    import shutil

    from helpers.cli import read_metrics

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(PRE_MOVE, run_dir / "checkpoints" / "last.ckpt")
    args = ["model.net.hidden_dims=[8]", "callbacks.early_stopping=null", "logger=none"]
    run_cli([*args, "trainer.max_epochs=3", "ckpt_path=last", f"hydra.run.dir={run_dir}"])
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["epochs"] == 3, metrics
