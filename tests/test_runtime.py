"""Process-wide torch settings (descentlab.run.runtime)."""

import os
import subprocess
import sys

import pytest
import torch

from descentlab.run.runtime import NVML_CHECK


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_importing_lightning_sets_the_nvml_probe_and_a_run_without_cuda_drops_it():
    # In a fresh process: Lightning's import sets the variable; configure_torch removes it,
    # and Adam's step then no longer loads NVML (it is asked once per step).
    code = f"""
import os, torch, lightning
from omegaconf import OmegaConf
from descentlab.run.runtime import configure_torch
assert os.environ.get("{NVML_CHECK}") == "1", "Lightning no longer sets it: drop the workaround"
configure_torch(OmegaConf.create({{"flush_denormal": True}}))
assert "{NVML_CHECK}" not in os.environ
calls = []
real = torch.cuda._device_count_nvml
torch.cuda._device_count_nvml = lambda: calls.append(1) or real()
param = torch.nn.Parameter(torch.ones(3))
optimizer = torch.optim.Adam([param])
param.sum().backward()
optimizer.step()
assert calls == [], calls
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != NVML_CHECK}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_with_the_variable_set_adam_probes_nvml_every_step():
    # The cost the workaround removes exists: without it, each Adam step asks NVML.
    code = """
import torch, lightning
calls = []
real = torch.cuda._device_count_nvml
torch.cuda._device_count_nvml = lambda: calls.append(1) or real()
param = torch.nn.Parameter(torch.ones(3))
optimizer = torch.optim.Adam([param])
for _ in range(3):
    param.sum().backward()
    optimizer.step()
print(len(calls))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip()) >= 3, "torch no longer probes per step: drop the workaround"
