"""Fixtures every test gets; the shared helpers are in ``tests/helpers/``."""

from __future__ import annotations

import inspect
import os
import types

import pytest
import torch
from omegaconf import DictConfig

from helpers.compose import compose_config

# fixtures of their own modules: slurm_cluster (a real one-node SLURM cluster)
pytest_plugins = ["helpers.slurm"]

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


# `make test` hands whole files to the 2 workers (--dist loadfile) in collection order, the
# next file to whichever finishes first. The longest files go first, so that the suite does
# not end with one worker running a 3-minute file while the other is idle (longest first is
# the classic greedy schedule). Measured with `make test PYTEST_ARGS=--durations=0`.
LONGEST_FIRST = (  # seconds per file in a clean-clone `make test` on 2 cores, 2026-12-05
    "test_task_runs.py",  # 185
    "test_resume.py",  # 185
    "test_slurm.py",  # 182
    "test_own_data.py",  # 167
    "test_bench.py",  # 151
    "test_backbone.py",  # 150
    "test_readme_commands.py",  # 105
    "test_predict.py",  # 93
    "test_demos.py",  # 86
    "test_transfer.py",  # 84
    "test_bad_input.py",  # 82
    "test_notebooks.py",  # 73
)


def _file_rank(item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_file_rank)  # stable: a file's tests keep their order
    for item in items:
        module = item.module
        funcs = [item.function]
        for defs in item._fixtureinfo.name2fixturedefs.values():
            funcs += [d.func for d in defs if d.func.__module__ == module.__name__]
        seen: set[int] = set()
        if any(_starts_a_process(f, module, seen) for f in funcs):
            item.add_marker(pytest.mark.cli)
