"""Regularizers, augmentation and early stopping that restores the best weights."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from descentlab.data.augment import RandomHorizontalFlipBatch, augmentation, batch_affine
from descentlab.models.module import squared_weight_norm
from descentlab.run.train import run
from helpers.cli import read_metrics, run_cli


def test_penalty_is_lambda_times_squared_weights_not_biases(make_cfg):
    model = instantiate(make_cfg("regularizer=weight_decay").model)
    assert model.l2_penalty == pytest.approx(1e-3)
    expected = sum((m.weight**2).sum() for m in model.net if isinstance(m, torch.nn.Linear))
    assert torch.allclose(squared_weight_norm(model.net), expected)
    batch = (torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    total = model.training_step(batch, 0)
    data_loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
    assert torch.allclose(total, data_loss + 1e-3 * expected)


def test_l1_penalty_is_lambda_times_absolute_weights_with_torchs_gradient(make_cfg):
    model = instantiate(make_cfg("regularizer=l1").model)
    (term,) = model.penalty_terms.values()
    weights = [m.weight for m in model.net if isinstance(m, torch.nn.Linear)]
    # torch's own L1: sum |w - 0| per weight matrix (biases are not penalized)
    reference = 1e-4 * sum(
        torch.nn.functional.l1_loss(w, torch.zeros_like(w), reduction="sum") for w in weights
    )
    value = term(model.net)
    assert torch.allclose(value, reference)
    (ours,) = torch.autograd.grad(value, [weights[0]])
    (torchs,) = torch.autograd.grad(reference, [weights[0]])
    assert torch.equal(ours, torchs) and torch.allclose(ours, 1e-4 * weights[0].sign())
    # the training loss is the data term plus the penalty
    batch = (torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    data_loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
    assert torch.allclose(model.training_step(batch, 0), data_loss + reference)


def test_l2_and_l1_penalties_add_up(make_cfg):
    model = instantiate(make_cfg("regularizer=[weight_decay,l1]").model)
    assert set(model.penalty_terms) == {"l1", "l2"}
    batch = (torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    data_loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
    penalties = sum(term(model.net) for term in model.penalty_terms.values())
    assert torch.allclose(model.training_step(batch, 0), data_loss + penalties)


@pytest.mark.slow
def test_l1_through_the_cli_gives_sparser_weights(tmp_path):
    def small_weight_fraction(regularizer: str) -> float:
        run_dir = tmp_path / regularizer
        run_cli(
            [
                f"regularizer={regularizer}",
                "trainer.max_epochs=6",
                "callbacks.progress_bar=null",
                "logger=none",
                "test=false",
                f"hydra.run.dir={run_dir}",
            ]
        )
        state = torch.load(run_dir / "model.pt", weights_only=True)
        weights = torch.cat([v.flatten() for v in state.values() if v.ndim >= 2])
        return (weights.abs() < 1e-2).float().mean().item()

    # measured: 0.42 with the default strength (1e-4) vs 0.11 without, after 10 epochs
    assert small_weight_fraction("l1") > 2 * small_weight_fraction("none")
    assert read_metrics(tmp_path / "l1")["train/penalty"] > 0


@pytest.mark.slow
def test_weight_decay_logs_penalty_and_shrinks_weights(make_cfg, tmp_path):
    plain = run(make_cfg("trainer.max_epochs=5", "callbacks.early_stopping=null", subdir="plain"))
    decayed = run(
        make_cfg(
            "regularizer=weight_decay",
            "model.l2_penalty=0.01",
            "trainer.max_epochs=5",
            "callbacks.early_stopping=null",
            subdir="decayed",
        )
    )
    assert "train/penalty" in decayed and "train/penalty" not in plain

    def norm(sub):
        state = torch.load(tmp_path / sub / "model.pt", weights_only=True)
        return sum((v**2).sum() for k, v in state.items() if k.endswith("weight"))

    assert norm("decayed") < 0.8 * norm("plain")


def sgd_trajectory(net, step_fn, optimizer, steps=30):
    """Full-batch steps on a fixed random problem; the parameters at the end."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(32, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (32,), generator=gen)
    for _ in range(steps):
        optimizer.zero_grad()
        step_fn((x, y)).backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("lam", [1e-3, 0.05])
def test_l2_penalty_lambda_is_torch_sgd_weight_decay_two_lambda_on_the_weights_only(make_cfg, lam):
    """L + λ‖w‖² has gradient ∇L + 2λw on weights: torch's weight_decay=2λ on a weights-only group."""
    cfg = make_cfg(
        "regularizer=weight_decay",
        f"model.l2_penalty={lam}",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "model.net.hidden_dims=[16,12]",
        "init=xavier_normal",
    )
    model = instantiate(cfg.model).double()
    start = copy.deepcopy(model.net)
    ours = sgd_trajectory(
        model.net, lambda b: model.training_step(b, 0), model.configure_optimizers()
    )

    def torch_sgd(weights_decay, biases_decay):
        net = copy.deepcopy(start)
        groups = [
            {"params": [p for p in net.parameters() if p.ndim >= 2], "weight_decay": weights_decay},
            {"params": [p for p in net.parameters() if p.ndim < 2], "weight_decay": biases_decay},
        ]
        loss = lambda b: torch.nn.functional.cross_entropy(net(b[0]), b[1])  # noqa: E731
        return sgd_trajectory(net, loss, torch.optim.SGD(groups, lr=0.5))

    def gap(theirs):
        return max((p - q).abs().max().item() for p, q in zip(ours, theirs, strict=True))

    assert gap(torch_sgd(2 * lam, 0.0)) < 1e-12
    assert gap(torch_sgd(lam, 0.0)) > 1e-6  # λw, torch's meaning of the same number: differs
    assert gap(torch_sgd(2 * lam, 2 * lam)) > 1e-6  # decaying the biases too: differs


def test_the_old_key_model_weight_decay_fails_in_one_line_naming_the_new_one(tmp_path):
    proc = run_cli(["model.weight_decay=0.01", f"hydra.run.dir={tmp_path}"], check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.weight_decay" in lines[0] and "model.l2_penalty" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_dropout_is_active_in_training_and_off_in_eval(make_cfg):
    model = instantiate(make_cfg("regularizer=dropout").model)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in model.net)
    x = torch.rand(32, 1, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_the_lectures_dropout_keeps_or_zeros_each_unit_and_scales_at_evaluation(make_cfg):
    """v = m ⊙ σ(u) in training (no rescaling), (1 − p)·σ(u) at evaluation: the expectation
    of what training saw; PyTorch's inverted nn.Dropout scales by 1/(1 − p) instead."""
    from descentlab.models.mlp import LectureDropout

    p, u = 0.3, torch.rand(200_000) + 0.5
    torch.manual_seed(0)
    lecture, inverted = LectureDropout(p), torch.nn.Dropout(p)
    v = lecture.train()(u)
    kept = v != 0
    assert torch.equal(v[kept], u[kept])  # kept units pass unscaled
    assert (~kept).float().mean().item() == pytest.approx(p, abs=0.005)
    assert v.mean().item() == pytest.approx((1 - p) * u.mean().item(), rel=0.01)
    assert torch.allclose(lecture.eval()(u), (1 - p) * u)  # eval: the training expectation
    w = inverted.train()(u)
    assert torch.allclose(w[w != 0], u[w != 0] / (1 - p))  # torch: scaled up in training
    assert torch.equal(inverted.eval()(u), u)
    model = instantiate(make_cfg("regularizer=dropout", "model.net.dropout_form=lecture").model)
    assert [type(m).__name__ for m in model.net if "Dropout" in type(m).__name__] == [
        "LectureDropout",
        "LectureDropout",
    ]


def test_label_noise_replaces_that_share_of_training_labels_only(make_cfg):
    clean = instantiate(make_cfg().data)
    noisy = instantiate(make_cfg("data.label_noise=0.5").data)
    again = instantiate(make_cfg("data.label_noise=0.5").data)
    for dm in (clean, noisy, again):
        dm.setup()
    (x0, y0), (x1, y1) = clean.splits["train"], noisy.splits["train"]
    assert torch.equal(x0, x1)  # the same images in the same order
    wrong = (y0 != y1).float().mean().item()
    assert wrong == pytest.approx(0.5 * (1 - 1 / 10), abs=0.04)  # p·(1 − 1/K)
    assert torch.equal(y1, again.splits["train"][1])  # seeded
    for split in ("val", "test"):
        assert torch.equal(clean.splits[split][1], noisy.splits[split][1])


@pytest.mark.slow
def test_random_labels_are_memorized_not_learned(make_cfg, tmp_path):
    """data.label_noise=1: the training accuracy climbs far above chance while the test
    accuracy stays at chance (the network memorizes; there is nothing to learn)."""
    cfg = make_cfg(
        "data.label_noise=1.0",
        "callbacks.early_stopping=null",
        "trainer.max_epochs=60",
        "logger=none",
        "test=true",
    )
    metrics = run(cfg)
    assert metrics["last/train/acc"] > 0.5, metrics
    assert metrics["test/acc"] < 0.2, metrics


def test_regularizers_combine_as_a_list(make_cfg):
    cfg = make_cfg("regularizer=[weight_decay,dropout,augment]")
    assert cfg.model.l2_penalty > 0 and cfg.model.net.dropout > 0 and cfg.data.augment is not None


def test_bottleneck_narrows_a_hidden_layer(make_cfg):
    net = instantiate(make_cfg("regularizer=bottleneck").model).net
    widths = [m.out_features for m in net if isinstance(m, torch.nn.Linear)]
    assert min(widths[:-1]) <= 8


def test_batch_affine_equals_torchvision_per_sample():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 12, 12)
    angle = torch.tensor([0.0, 12.0, -20.0, 33.0, 5.0, -7.5])
    shift = torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [0.0, -2.0], [1.0, 1.0], [-1.0, 2.0], [3.0, -1.0]]
    )
    scale = torch.tensor([1.0, 1.0, 1.1, 0.9, 1.0, 1.05])
    out = batch_affine(x, angle, shift, scale)
    for i in range(len(x)):
        ref = TF.affine(
            x[i],
            angle=float(angle[i]),
            translate=shift[i].tolist(),
            scale=float(scale[i]),
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
        assert torch.allclose(out[i], ref, atol=1e-5)


def test_flip_equals_torchvision_where_it_flips():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 4, 4)
    out = RandomHorizontalFlipBatch(0.5)(x)
    flipped = torch.tensor(
        [torch.equal(o, TF.horizontal_flip(i)) for o, i in zip(out, x, strict=True)]
    )
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert (flipped | kept).all() and 10 < flipped.sum() < 54


def test_each_sample_gets_its_own_random_augmentation():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 8, 8).expand(16, -1, -1, -1)  # the same image 16 times
    out = augmentation((1, 8, 8), noise=0.0)(x)
    distinct = {tuple(o.flatten().round(decimals=4).tolist()) for o in out}
    assert len(distinct) > 10


def test_augmentation_touches_training_batches_only(make_cfg):
    cfg = make_cfg("regularizer=augment", "trainer.max_epochs=1")
    datamodule = instantiate(cfg.data)

    class FakeTrainer:  # the one attribute on_after_batch_transfer reads
        training = False

    datamodule.trainer = FakeTrainer()
    batch = (torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    assert datamodule.on_after_batch_transfer(batch, 0)[0] is batch[0]
    FakeTrainer.training = True
    assert not torch.equal(datamodule.on_after_batch_transfer(batch, 0)[0], batch[0])


@pytest.mark.slow
def test_augmented_training_still_learns(make_cfg):
    metrics = run(make_cfg("regularizer=augment", "trainer.max_epochs=10"))
    assert metrics["test/acc"] > 0.9


def test_early_stopping_restores_the_best_epochs_weights(make_cfg, tmp_path):
    # Set up to overfit: a big net, a high learning rate, 15% of the labels, short patience.
    cfg = make_cfg(
        "data.train_fraction=0.15",
        "optimizer.lr=0.01",
        "model.net.hidden_dims=[512,512]",
        "callbacks.early_stopping.patience=3",
        "trainer.max_epochs=100",
    )
    metrics = run(cfg)
    assert metrics["best_epoch"] < metrics["epochs"] - 1  # it stopped after the best epoch
    assert metrics["epochs"] < 100  # ... early
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == metrics["best_epoch"]
    final = torch.load(tmp_path / "model.pt", weights_only=True)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in final.items():
        assert torch.equal(
            value, best["state_dict"][f"net.{key}"]
        )  # the tested weights are the best's
    assert any(not torch.equal(v, last["state_dict"][f"net.{k}"]) for k, v in final.items())
    assert (
        read_metrics(tmp_path)["val/loss"]
        >= best["callbacks"][next(k for k in best["callbacks"] if "Restore" in k)][
            "best_score"
        ].item()
    )


def test_generalization_gap_is_logged_each_epoch(make_cfg, tmp_path):
    run(make_cfg("trainer.max_epochs=3"))
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("gap/loss")
    assert sum(1 for row in rows[1:] if row.split(",")[column]) == 3
