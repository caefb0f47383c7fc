"""DataModules: fixed splits, tensor batching, DDP sharding, subsets, torchvision files."""

from __future__ import annotations

import pytest
import torch
from torchvision import datasets

from descentlab.data import (
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    TensorBatches,
)
from descentlab.errors import ConfigError, DataNotFoundError
from helpers.fake_files import register_cifar10_checksums, write_cifar10, write_mnist_like


def test_digits_split_is_fixed_by_the_seed_and_disjoint():
    a, b, c = DigitsDataModule(seed=1), DigitsDataModule(seed=1), DigitsDataModule(seed=2)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["test"][0], b.splits["test"][0])
    assert not torch.equal(a.splits["test"][0], c.splits["test"][0])
    sizes = {k: len(v[0]) for k, v in a.splits.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 359
    flat = {k: {tuple(x.flatten().tolist()) for x in v[0]} for k, v in a.splits.items()}
    # images that occur in two splits are true duplicates in the dataset: few at most
    assert len(flat["train"] & flat["test"]) < 5
    x, y = a.splits["train"]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.long and set(y.tolist()) == set(range(10))


def test_batches_cover_each_sample_once_per_epoch_in_a_new_order():
    x, y = torch.arange(100).float().unsqueeze(1), torch.arange(100)
    epoch = {"n": 0}
    batches = TensorBatches(x, y, batch_size=16, shuffle=True, seed=3, epoch_fn=lambda: epoch["n"])
    first = torch.cat([b[1] for b in batches])
    epoch["n"] = 1
    second = torch.cat([b[1] for b in batches])
    assert len(batches) == 7
    assert sorted(first.tolist()) == list(range(100)) == sorted(second.tolist())
    assert not torch.equal(first, second)


def test_ddp_shards_together_form_the_single_process_global_batches():
    x, y = torch.arange(64).float().unsqueeze(1), torch.arange(64)
    single = list(TensorBatches(x, y, batch_size=8, shuffle=True, seed=0))
    ranks = [
        list(TensorBatches(x, y, batch_size=4, shuffle=True, seed=0, rank=r, world_size=2))
        for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for k, (_, ys) in enumerate(single):
        union = torch.cat([ranks[0][k][1], ranks[1][k][1]])
        assert sorted(union.tolist()) == sorted(ys.tolist())
    assert not set(torch.cat([b[1] for b in ranks[0]]).tolist()) & set(
        torch.cat([b[1] for b in ranks[1]]).tolist()
    )


def test_full_batch_is_one_step_per_epoch():
    dm = DigitsDataModule(batch_size="full")
    loader = dm.train_dataloader()
    assert len(loader) == 1
    ((xb, yb),) = list(loader)
    assert len(xb) == len(dm.splits["train"][0])


def test_bad_batch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="^batch_size=0"):
        TensorBatches(torch.zeros(4, 1), torch.zeros(4), batch_size=0)


def test_class_subset_is_relabelled_in_the_order_given():
    dm = DigitsDataModule(classes=[7, 3], num_classes=2)
    dm.setup()
    full = DigitsDataModule()
    full.setup()
    y_full = full.splits["train"][1]
    y_sub = dm.splits["train"][1]
    assert set(y_sub.tolist()) == {0, 1}
    assert (y_sub == 0).sum() == (y_full == 7).sum() and (y_sub == 1).sum() == (y_full == 3).sum()


def test_train_fraction_keeps_that_share_of_the_labels_only_in_train():
    dm, full = DigitsDataModule(train_fraction=0.1), DigitsDataModule()
    dm.setup()
    full.setup()
    assert len(dm.splits["train"][0]) == round(0.1 * len(full.splits["train"][0]))
    assert torch.equal(dm.splits["test"][0], full.splits["test"][0])


def test_batches_resume_mid_epoch_from_their_state():
    x, y = torch.arange(40).float().unsqueeze(1), torch.arange(40)
    batches = TensorBatches(x, y, batch_size=8, shuffle=True, seed=5)
    it = iter(batches)
    seen = [next(it)[1] for _ in range(2)]
    state = batches.state_dict()
    resumed = TensorBatches(x, y, batch_size=8, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    rest = [b[1] for b in resumed]
    full = [b[1] for b in TensorBatches(x, y, batch_size=8, shuffle=True, seed=5)]
    assert torch.equal(torch.cat(seen + rest), torch.cat(full))


@pytest.mark.parametrize(
    "module,name", [(MNISTDataModule, "MNIST"), (FashionMNISTDataModule, "FashionMNIST")]
)
def test_mnist_like_files_load_through_torchvision(tmp_path, module, name):
    write_mnist_like(tmp_path, name, n_train=300, n_test=50)
    reference = getattr(datasets, name)(tmp_path, train=True)
    dm = module(data_dir=str(tmp_path), val_size=50)
    dm.setup()
    x, y = dm.splits["train"]
    assert (
        x.shape == (250, 1, 28, 28)
        and len(dm.splits["val"][0]) == 50
        and len(dm.splits["test"][0]) == 50
    )
    # the same images torchvision decoded, standardized with the dataset's mean and std
    val_and_train = torch.cat([dm.splits["val"][0], x])
    expected = (reference.data.float() / 255 - dm.mean[0]) / dm.std[0]
    assert torch.allclose(val_and_train.sum(), expected.sum(), rtol=1e-4)
    assert sorted(torch.cat([dm.splits["val"][1], y]).tolist()) == sorted(
        reference.targets.tolist()
    )


def test_cifar10_files_load_through_torchvision(tmp_path, monkeypatch):
    for attr in ("train_list", "test_list", "meta"):
        monkeypatch.setattr(datasets.CIFAR10, attr, getattr(datasets.CIFAR10, attr))
    register_cifar10_checksums(write_cifar10(tmp_path, n_train=500, n_test=100))
    dm = CIFAR10DataModule(data_dir=str(tmp_path), val_size=100)
    dm.setup()
    assert dm.splits["train"][0].shape == (400, 3, 32, 32)
    assert dm.splits["test"][0].shape == (100, 3, 32, 32)
    raw = datasets.CIFAR10(tmp_path, train=False)
    channel0 = torch.as_tensor(raw.data[..., 0]).float() / 255
    assert torch.allclose(
        dm.splits["test"][0][:, 0], (channel0 - dm.mean[0]) / dm.std[0], atol=1e-5
    )


@pytest.mark.parametrize("module", [MNISTDataModule, FashionMNISTDataModule, CIFAR10DataModule])
def test_missing_dataset_says_how_to_get_it(tmp_path, module):
    dm = module(data_dir=str(tmp_path / "empty"))
    with pytest.raises(DataNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    assert "data.download=true" in message and "data=digits" in message and "\n" not in message


def test_a_rank_holds_only_its_rows_of_an_unshuffled_split():
    from descentlab.data.tensor_data import TensorBatches

    data = DigitsDataModule(seed=0)
    data.setup()
    for split, shuffle in (("val", False), ("test", False), ("train", False)):
        x, y = data.splits[split]
        for rank in (0, 1):
            held = data._batches(split, 64, shuffle, rank_world=(rank, 2))
            assert len(held.x) == len(x) // 2  # half of the rows on this rank's device
            whole = TensorBatches(x, y, 64, rank=rank, world_size=2)  # the same batches
            for (xa, ya), (xb, yb) in zip(held, whole, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # a shuffled split visits other rows each epoch: every rank holds all of them
    assert len(data._batches("train", 64, True, rank_world=(1, 2)).x) == len(
        data.splits["train"][0]
    )
