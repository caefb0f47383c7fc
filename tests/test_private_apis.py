"""src/ uses only public APIs of Hydra, Lightning and the other libraries, except in the
documented places below, each pinned by a test that fails loudly when the name moves."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import descentlab
from helpers.cli import ROOT

SRC = ROOT / "src" / "descentlab"

# (file relative to src/descentlab, private name): why no public route exists.
ALLOWED_ACCESS = {
    (
        "config/cli.py",
        "hydra._internal.utils",
    ): "Hydra has no public hook to format its errors (run_and_report)",
    ("config/cli.py", "run_and_report"): "the function patched, see above",
    ("config/cli.py", "_descentlab"): "our own marker on the patched function",
    # the scalar engine's nodes reach into each other (micrograd's names, kept for students
    # who compare the two): our own class, not a library's
    ("autograd/engine.py", "_backward"): "a node's local backward step (micrograd's name)",
    ("autograd/engine.py", "_prev"): "a node's inputs (micrograd's name)",
    # a SIGTERM in the moments between Lightning installing its handler and on_test_start
    # set Lightning's flag, which stops the test loop; the docs promise the test finishes
    (
        "run/interrupt.py",
        "_signal_connector",
    ): "Lightning has no public way to clear its SIGTERM flag",
    # the lecture's optimizers step all tensors in one multi-tensor call (optimizer.foreach):
    # torch's only multi-tensor kernels are torch._foreach_*, which torch.optim's own foreach
    # steps call; the in-place ones (``_foreach_add_``) end in ``_`` and pass unflagged
    **{
        (file, name): "torch's multi-tensor kernels (torch.optim's foreach path uses them)"
        for file, name in (
            ("optim/adam.py", "_foreach_div"),
            ("optim/adam.py", "_foreach_mul"),
            ("optim/adam.py", "_foreach_sqrt"),
            ("optim/adaptive.py", "_foreach_mul"),
            ("optim/adaptive.py", "_foreach_sqrt"),
            ("optim/base.py", "_foreach_add"),
        )
    },
}
ALLOWED_OVERRIDES = {
    # Lightning's CSV writer deletes metrics.csv in its constructor, with no switch to keep it
    ("descentlab.run.loggers", "_AppendingWriter", "_check_log_dir_exists"),
}


# public despite the underscore: documented in the library's own reference
PUBLIC_UNDERSCORED = {("os", "_exit")}  # the standard library's "exit without cleanup"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and not name.endswith("_")


def private_accesses(path: Path) -> set[tuple[str, str]]:
    """(file, name) of each import of a private module and each ``obj._name`` on an object
    other than ``self``/``cls``/``super()`` (``_target_``-style config keys are not private)."""
    found = set()
    relative = str(path.relative_to(SRC))
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for module in modules:
                if any(_private(part) for part in module.split(".")):
                    found.add((relative, module))
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Name) and (owner.id, node.attr) in PUBLIC_UNDERSCORED:
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue
            found.add((relative, node.attr))
    return found


def test_src_reaches_into_no_private_name_of_a_library():
    found = set().union(*(private_accesses(p) for p in SRC.rglob("*.py")))
    unexpected = sorted(found - set(ALLOWED_ACCESS))
    assert not unexpected, f"private names used outside the documented places: {unexpected}"


def test_src_overrides_no_private_method_of_a_library_class():
    overrides = set()
    for module_info in pkgutil.walk_packages(descentlab.__path__, "descentlab."):
        module = importlib.import_module(module_info.name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            library_bases = [
                b for b in cls.__mro__[1:] if not b.__module__.startswith("descentlab")
            ]
            for name, value in vars(cls).items():
                if not inspect.isfunction(value):  # e.g. _abc_impl, set by the ABC machinery
                    continue
                if _private(name) and any(name in vars(base) for base in library_bases):
                    overrides.add((module.__name__, cls_name, name))
    unexpected = sorted(overrides - ALLOWED_OVERRIDES)
    assert not unexpected, f"private library methods overridden: {unexpected}"


def test_the_pinned_private_names_still_exist():
    """When a Hydra or Lightning release moves one of these, this fails (the code would
    otherwise silently stop doing what it says)."""
    import hydra._internal.utils as hydra_utils
    import torch
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert trainer._signal_connector.received_sigterm is False
    assert trainer.received_sigterm is False  # the public property reads that flag
    trainer._signal_connector.received_sigterm = True
    assert trainer.received_sigterm is True
    for name in ("_foreach_add", "_foreach_div", "_foreach_mul", "_foreach_sqrt"):
        assert callable(getattr(torch, name)), name

    assert callable(hydra_utils.run_and_report)
    assert callable(ExperimentWriter._check_log_dir_exists)
    # ... and a constructor in its class hierarchy still calls it
    constructors = [c.__init__ for c in ExperimentWriter.__mro__ if "__init__" in vars(c)]
    assert any("_check_log_dir_exists" in inspect.getsource(init) for init in constructors)
