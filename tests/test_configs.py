"""Every option of every config group composes, and the built objects are what they claim."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from descentlab.config import CONFIG_DIR
from descentlab.models.mlp import MLP
from descentlab.models.module import TaskModule

GROUPS = [
    "data",
    "model",
    "optimizer",
    "init",
    "regularizer",
    "callbacks",
    "logger",
    "trainer",
    "debug",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def user_files(group: str, option: str, tmp_path) -> list[str]:
    """The options that read a user's own data get a small file or folder of it."""
    if (group, option) == ("data", "arrays"):
        torch.save({"x": torch.rand(10, 3), "y": torch.arange(10) % 2}, tmp_path / "d.pt")
        return [f"data.path={tmp_path / 'd.pt'}"]
    if (group, option) == ("data", "image_folder"):
        from helpers.fake_files import write_image_folder

        return [f"data.root={write_image_folder(tmp_path / 'imgs', per_class=1, size=8)}"]
    return []


ALL_OPTIONS = [(g, o) for g in GROUPS for o in options(g)]


def test_the_design_cards_groups_all_exist():
    for group, required in {
        "data": {"digits", "mnist", "fashion_mnist", "cifar10"},
        "model": {"mlp"},
        "optimizer": {"torch_sgd", "torch_adam", "torch_adamw"},
        "trainer": {"default", "cpu", "gpu", "ddp", "ddp_cpu"},
        "callbacks": {"default", "none"},
        "logger": {"csv", "tensorboard", "wandb", "many"},
        "debug": {"fdr", "overfit", "limit"},
    }.items():
        assert required <= set(options(group)), group


@pytest.mark.parametrize("group,option", ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_option_composes_and_resolves(make_cfg, group, option, tmp_path):
    from omegaconf import OmegaConf

    cfg = make_cfg(f"{group}={option}", *user_files(group, option, tmp_path))
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    assert resolved["_target_"]
    assert cfg.data._target_.startswith("descentlab.data.")


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(make_cfg, experiment):
    cfg = make_cfg(f"+experiment={experiment}")
    assert cfg.model._target_


def test_experiment_is_not_in_the_defaults_list():
    text = (CONFIG_DIR / "train.yaml").read_text()
    assert "experiment" not in text.split("defaults:")[1].split("\n\n")[0]


def test_instantiated_model_is_ready_with_a_partial_optimizer(make_cfg):
    cfg = make_cfg("model.net.hidden_dims=[32,16]", "optimizer=torch_sgd", "optimizer.lr=0.3")
    model = instantiate(cfg.model)
    assert isinstance(model, TaskModule) and isinstance(model.net, MLP)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]
    factory = instantiate(cfg.model.optimizer)
    optimizer = factory(params=model.parameters())
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.3


def test_lecture_network_is_sigmoid_mlp_with_one_hidden_layer(make_cfg):
    cfg = make_cfg("model.net.hidden_dims=[16]", "model.net.activation=sigmoid")
    net = instantiate(cfg.model).net
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Flatten", "Linear", "Sigmoid", "Linear"]
    x = torch.rand(5, 1, 8, 8)
    W, W2 = net[1], net[3]
    u = torch.sigmoid(W(x.flatten(1)))  # u = σ(Wx)
    assert torch.allclose(net(x), W2(u))  # logits; v = σ(W'u) up to the final squashing
    assert torch.allclose(torch.sigmoid(net(x)), torch.sigmoid(W2(u)))


def test_dropout_follows_each_hidden_activation(make_cfg):
    net = instantiate(make_cfg("model.net.hidden_dims=[8,8]", "model.net.dropout=0.3").model).net
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]


def test_class_subset_sets_the_models_output_width(make_cfg):
    cfg = make_cfg("data.classes=[5,6,7,8,9]")
    assert cfg.data.num_classes == 5
    assert instantiate(cfg.model).net[-1].out_features == 5


def test_predict_step_returns_probabilities(make_cfg):
    model = instantiate(make_cfg().model)
    x = torch.rand(7, 1, 8, 8)
    probs = model.predict_step((x, torch.zeros(7)), 0)
    assert probs.shape == (7, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(7)) and (probs >= 0).all()
    assert torch.allclose(probs, torch.softmax(model(x), dim=-1))
