"""Fixtures every test gets; the shared helpers are in ``tests/helpers/``."""

from __future__ import annotations

import inspect
import os
import types

import pytest
import torch
from omegaconf import DictConfig

from helpers.compose import compose_config

# One thread per process: `make test` runs two test files at a time on 2 cores, and two
# processes of 2 threads each spin-wait for cores (a ResNet-18 test took 617 s instead of
# ~150 s). Subprocesses (the real CLI) inherit the variables. What a test asserts about
# trained results was measured this way; on the CPU a seed's result depends on the thread
# count (docs/transfer.md).
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, quiet: bool = True, subdir: str | None = None) -> DictConfig:
        return compose_config(
            list(overrides), tmp_path / subdir if subdir else tmp_path, quiet=quiet
        )

    return make


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch, tmp_path):
    # W&B never reaches the network in tests, and writes under the test's tmp dir.
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")


# A test that starts a process (the real CLI, torchrun, a SLURM job) is marked ``cli``
# automatically, so `make test-fast` can leave those out; `smoke` marks the few CLI tests
# it keeps. The mark follows the test's own code, the module functions it calls and the
# fixtures it uses.
STARTS_A_PROCESS = ("run_cli(", "subprocess.", "Popen(")


def _starts_a_process(func, module, seen: set[int]) -> bool:
    func = inspect.unwrap(func)
    if not isinstance(func, types.FunctionType) or id(func) in seen:
        return False
    seen.add(id(func))
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    if any(marker in source for marker in STARTS_A_PROCESS):
        return True
    called = (getattr(module, name, None) for name in func.__code__.co_names)
    return any(
        _starts_a_process(f, module, seen)
        for f in called
        if isinstance(f, types.FunctionType) and f.__module__ == module.__name__
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module
        funcs = [item.function]
        for defs in item._fixtureinfo.name2fixturedefs.values():
            funcs += [d.func for d in defs if d.func.__module__ == module.__name__]
        seen: set[int] = set()
        if any(_starts_a_process(f, module, seen) for f in funcs):
            item.add_marker(pytest.mark.cli)
