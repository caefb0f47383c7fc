"""The speed switches: model.compile, bf16-mixed, fused torch steps, throughput in every run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from descentlab.callbacks.throughput import flops_per_sample
from descentlab.models.mlp import MLP
from helpers.cli import one_error_line, read_metrics, run_cli

# digits, 3 epochs: short runs whose curves are compared epoch by epoch
SHORT = ["trainer.max_epochs=3", "test=false", "logger=none"]


def mlp_flops(widths: list[int]) -> int:
    """Forward + backward FLOPs of one sample through Linear layers of ``widths``: 2 per
    multiply-add; forward n_in·n_out per layer, backward the weight gradient (the same) and
    the input gradient (the same again) for every layer but the first (its input is data)."""
    macs = [a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return 2 * (2 * sum(macs) + sum(macs[1:]))


def history(run_dir) -> dict[int, dict[str, float]]:
    epochs = json.loads((run_dir / "history.json").read_text())["epochs"]
    return {int(epoch): values for epoch, values in epochs.items()}


@pytest.fixture(scope="module")
def eager_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eager") / "run"
    run_cli([*SHORT, f"hydra.run.dir={run_dir}"])
    return run_dir


# -- throughput ----------------------------------------------------------------------------
@pytest.mark.parametrize("ops", ["native", "optable"])
def test_flops_per_sample_is_the_analytic_count_and_leaves_training_alone(ops):
    torch.manual_seed(0)
    net = MLP(input_shape=[64], num_outputs=10, hidden_dims=[256, 128], ops=ops, dropout=0.5)
    net.train()
    x = torch.randn(32, 64)
    random_state = torch.get_rng_state()
    assert flops_per_sample(net, x) == mlp_flops([64, 256, 128, 10])
    assert all(p.grad is None for p in net.parameters())  # .grad untouched
    assert all(module.training for module in net.modules())  # modes restored
    assert torch.equal(torch.get_rng_state(), random_state)  # no dropout draw


def test_every_run_records_its_throughput(eager_run):
    metrics = read_metrics(eager_run)
    per_sample = metrics["perf/flops_per_sample"]
    assert per_sample == mlp_flops([64, 256, 128, 10])
    assert metrics["perf/samples_per_s"] > 0
    assert metrics["perf/flops_per_s"] == pytest.approx(metrics["perf/samples_per_s"] * per_sample)
    epochs = history(eager_run)
    assert all(epochs[e]["perf/samples_per_s"] > 0 for e in range(3))  # logged per epoch
    # the run's figure is the median of the epochs after the first (warm-up)
    later = sorted(epochs[e]["perf/samples_per_s"] for e in (1, 2))
    assert metrics["perf/samples_per_s"] == pytest.approx(sum(later) / 2, rel=1e-6)
    assert not any(key.startswith("last/perf/") for key in metrics)


# -- model.compile -------------------------------------------------------------------------
@pytest.mark.slow
def test_compiled_and_eager_runs_take_the_same_steps_and_a_compiled_run_resumes(
    eager_run, tmp_path
):
    run_dir = tmp_path / "compiled"
    run_cli([*SHORT, "model.compile=true", f"hydra.run.dir={run_dir}"])
    compiled, eager = history(run_dir), history(eager_run)
    for epoch in range(3):
        for key in ("train/loss", "val/loss"):
            # inductor fuses and reorders float32 arithmetic: equal to rounding, not bitwise
            assert compiled[epoch][key] == pytest.approx(eager[epoch][key], rel=1e-5)
    log = (run_dir / "train.log").read_text()
    assert log.count("torch.compile (mode default): the first training step took") == 1
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])

    run_cli(
        ["trainer.max_epochs=4", "test=false", "logger=none", "model.compile=true"]
        + [f"hydra.run.dir={run_dir}", "ckpt_path=last"]
    )
    metrics = read_metrics(run_dir)
    assert metrics["epochs"] == 4 and metrics["status"] == "completed"
    from descentlab import api

    module = api.load(run_dir)  # loads eager: the same weights, no compilation
    assert module.compile_mode is None
    assert module(torch.zeros(2, 64)).shape == (2, 10)


def test_the_op_tables_functions_compile():
    torch.manual_seed(0)
    eager = MLP(input_shape=[16], num_outputs=3, hidden_dims=[8], ops="optable")
    compiled = MLP(input_shape=[16], num_outputs=3, hidden_dims=[8], ops="optable")
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()
    x = torch.randn(5, 16)
    out_e, out_c = eager(x), compiled(x)
    out_e.square().sum().backward()
    out_c.square().sum().backward()
    assert torch.allclose(out_c, out_e, atol=1e-6)
    for p, q in zip(compiled.parameters(), eager.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)


def test_a_bad_compile_mode_is_one_line(tmp_path):
    proc = run_cli(["model.compile=fast", f"hydra.run.dir={tmp_path}"], check=False)
    assert "model.compile='fast' is invalid" in one_error_line(proc)


# -- precision -----------------------------------------------------------------------------
def test_bf16_mixed_on_the_cpu_follows_float32(eager_run, tmp_path):
    run_cli([*SHORT, "trainer.precision=bf16-mixed", f"hydra.run.dir={tmp_path}"])
    bf16, fp32 = history(tmp_path), history(eager_run)
    for epoch in range(3):
        # bf16 keeps 8 bits of mantissa in the matmuls: measured ≤ 0.8 % apart after 3 epochs
        assert bf16[epoch]["train/loss"] == pytest.approx(fp32[epoch]["train/loss"], rel=0.03)
    assert bf16[2]["train/loss"] < 0.5 * bf16[0]["train/loss"]  # and it trains


def test_the_gpu_presets_compose(make_cfg):
    fast = make_cfg("trainer=gpu_fast")
    assert fast.trainer.accelerator == "gpu" and fast.trainer.precision == "bf16-mixed"
    assert fast.float32_matmul_precision == "high"
    assert make_cfg("trainer=mps").trainer.accelerator == "mps"


# -- torch's fused optimizer step ----------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "fused"),
    [
        (["optimizer=torch_adam"], True),
        (["optimizer=torch_adamw"], True),
        (["optimizer=torch_sgd"], True),
        (["optimizer=torch_adam", "optimizer.fused=false"], False),
        (["optimizer=adam"], None),  # ours: no fused kernel, its own foreach step
    ],
)
def test_torch_optimizers_take_the_fused_step_unless_told(make_cfg, overrides, fused):
    from descentlab.run.build import build_model

    model = build_model(make_cfg(*overrides))
    optimizer = model.configure_optimizers()
    assert optimizer.defaults.get("fused") == (fused if fused is not None else None)


def test_the_fused_step_equals_torchs_loop():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    twin = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    twin.load_state_dict(net.state_dict())
    x, y = torch.randn(32, 5, dtype=torch.float64), torch.randn(32, 3, dtype=torch.float64)
    fused = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=0.01, fused=True)
    loop = torch.optim.Adam(twin.parameters(), lr=0.01, weight_decay=0.01, foreach=False)
    for _ in range(100):
        for model, optimizer in ((net, fused), (twin, loop)):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=0, atol=1e-10)


# -- the GPU (skipped without one) ---------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_training_step_never_waits_on_the_host():
    from descentlab.models.module import TaskModule
    from descentlab.optim import Adam

    torch.manual_seed(0)
    module = TaskModule(
        MLP(input_shape=[64], num_outputs=10, hidden_dims=[256]),
        optimizer=lambda params: Adam(params, lr=1e-3),
    ).cuda()
    optimizer = module.configure_optimizers()
    x, y = torch.randn(64, 64, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    module.train()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            optimizer.zero_grad(set_to_none=True)
            module.loss_fn(module(x), y).backward()
            optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
