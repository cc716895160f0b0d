"""dlnb.data.loaders: seeded splits and subsets, and make_loaders on the host or device-resident."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data import loaders as data
from dlnb.data.resident import GpuLoader


def ids_of(loader) -> list[int]:
    return [int(i) for _, y in loader for i in y]


def test_splits_are_seeded_disjoint_and_complete():
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(100)
    a = data.make_loaders(x, y, x[:10], y[:10], batch_size=16, valid_fraction=0.2, seed=3)
    b = data.make_loaders(x, y, x[:10], y[:10], batch_size=16, valid_fraction=0.2, seed=3)
    c = data.make_loaders(x, y, batch_size=16, valid_fraction=0.2, seed=4)
    train, valid = ids_of(a.train), ids_of(a.valid)
    assert len(valid) == 20 and len(train) == 80
    assert not set(train) & set(valid) and set(train) | set(valid) == set(range(100))
    assert ids_of(b.valid) == valid and ids_of(b.train) == train  # same seed: same split and order
    assert set(ids_of(c.valid)) != set(valid)  # another seed: another split
    assert train != sorted(train)  # train is shuffled
    assert ids_of(a.test) == list(range(10)) and c.test is None
    assert all(float(xb[i, 0]) == float(yb[i]) for xb, yb in a.train for i in range(len(yb)))


def test_the_training_order_is_a_seeded_shuffle_of_the_split():
    x, y = torch.arange(100.0).unsqueeze(1), torch.arange(100)
    loaders = data.make_loaders(x, y, batch_size=16, valid_fraction=0.2, seed=3)
    train_idx, _ = data._split_indices(100, 0.2, seed=3)
    reference = DataLoader(
        TensorDataset(x[train_idx], y[train_idx]),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(3),
    )
    assert ids_of(loaders.train) == ids_of(reference)


def test_no_validation_split_and_bad_arguments():
    x, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    loaders = data.make_loaders(x, y, valid_fraction=0.0)
    assert loaders.valid is None and len(ids_of(loaders.train)) == 10
    with pytest.raises(ValueError, match="valid_fraction must be in"):
        data.make_loaders(x, y, valid_fraction=1.0)
    with pytest.raises(ValueError, match="x_train has 10 rows but y_train has 9"):
        data.make_loaders(x, y[:9])


def test_a_validation_split_of_your_own_replaces_the_held_out_one():
    x, y = torch.arange(12.0).unsqueeze(1), torch.arange(12)
    loaders = data.make_loaders(x, y, valid=(x[:3] + 100, y[:3] + 100), batch_size=5)
    assert sorted(ids_of(loaders.train)) == list(range(12))  # nothing held out of train
    assert ids_of(loaders.valid) == [100, 101, 102]
    with pytest.raises(ValueError, match="not both"):
        data.make_loaders(x, y, valid=(x, y), valid_fraction=0.2)


def test_eval_batch_size_batches_valid_and_test_in_order():
    x, y = torch.zeros(40, 2), torch.arange(40)
    loaders = data.make_loaders(x, y, x, y, batch_size=4, eval_batch_size=16, valid_fraction=0.5)
    assert {len(yb) for _, yb in loaders.train} == {4}
    assert [len(yb) for _, yb in loaders.test] == [16, 16, 8] and ids_of(loaders.test) == list(
        range(40)
    )
    assert [len(yb) for _, yb in loaders.valid] == [16, 4]


def test_lists_and_tuples_of_inputs_are_split_the_same_way():
    x = torch.arange(30.0).unsqueeze(1)
    y = torch.arange(30)
    plain = data.make_loaders(x, y, batch_size=4, valid_fraction=0.2, seed=1)
    order, held_out = ids_of(plain.train), ids_of(plain.valid)  # the first epoch's order
    tokens = [[int(i)] * (int(i) % 3 + 1) for i in y]  # rows of varying length

    def collate(batch):
        return [ids for ids, _ in batch], torch.stack([torch.as_tensor(t) for _, t in batch])

    listed = data.make_loaders(
        tokens, y, batch_size=4, valid_fraction=0.2, seed=1, collate_fn=collate
    )
    assert ids_of(listed.train) == order and ids_of(listed.valid) == held_out
    assert all(
        ids == [int(t)] * (int(t) % 3 + 1)
        for xb, yb in listed.train
        for ids, t in zip(xb, yb, strict=True)
    )
    paired = data.make_loaders((x, -x), y, batch_size=4, valid_fraction=0.2, seed=1)
    assert ids_of(paired.train) == order and ids_of(paired.valid) == held_out
    (a, b), yb = next(iter(paired.valid))
    assert torch.equal(a[:, 0], yb.float()) and torch.equal(b, -a)
    with pytest.raises(ValueError, match="as many rows"):
        data.make_loaders((x, x[:5]), y)


def test_resident_loaders_hold_out_the_same_validation_split():
    x, y = torch.randn(50, 1, 4, 4), torch.arange(50)
    standard = data.make_loaders(x, y, x[:7], y[:7], batch_size=8, valid_fraction=0.2, seed=4)
    resident = data.make_loaders(
        x, y, x[:7], y[:7], batch_size=8, valid_fraction=0.2, seed=4, device="cpu", translate=1
    )
    assert all(isinstance(loader, GpuLoader) for loader in vars(resident).values())
    assert resident.train.translate == 1 and resident.valid.translate == 0  # train only
    assert ids_of(resident.valid) == ids_of(standard.valid)
    assert sorted(ids_of(resident.train)) == sorted(ids_of(standard.train))
    assert ids_of(resident.test) == list(range(7))
    own = data.make_loaders(x, y, valid=(x[:5], y[:5]), eval_batch_size=2, device="cpu")
    assert len(own.train.x) == 50 and ids_of(own.valid) == list(range(5)) and len(own.valid) == 3


def test_resident_and_host_options_do_not_mix():
    x, y = torch.zeros(10, 1, 4, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="pass device=... as well"):
        data.make_loaders(x, y, translate=2)
    with pytest.raises(ValueError, match="train_transform configure DataLoaders"):
        data.make_loaders(x, y, device="cpu", train_transform=lambda t: t)
    with pytest.raises(ValueError, match="num_workers configure DataLoaders"):
        data.make_loaders(x, y, device="cpu", num_workers=2)


def test_train_transform_applies_to_train_only():
    x, y = torch.zeros(20, 3), torch.arange(20)
    loaders = data.make_loaders(x, y, valid_fraction=0.5, train_transform=lambda t: t + 1)
    assert all(bool((xb == 1).all()) for xb, _ in loaders.train)
    assert all(bool((xb == 0).all()) for xb, _ in loaders.valid)


def test_subsets_are_seeded_and_unique():
    a = data.subset_indices(1000, 100, seed=1)
    assert len(a) == 100 and len(set(a.tolist())) == 100 and a.max() < 1000
    assert np.array_equal(a, data.subset_indices(1000, 100, seed=1))
    assert not np.array_equal(a, data.subset_indices(1000, 100, seed=2))
    assert np.array_equal(data.subset_indices(10, None, 0), np.arange(10))
    assert np.array_equal(data.subset_indices(10, 50, 0), np.arange(10))


def test_per_class_subset_is_balanced_seeded_and_nested():
    labels = np.repeat(np.arange(4), 25)[np.random.default_rng(0).permutation(100)]
    small, large = (
        data.per_class_subset(labels, 3, seed=1),
        data.per_class_subset(labels, 10, seed=1),
    )
    assert np.bincount(labels[small]).tolist() == [3] * 4 and set(small) <= set(large)
    assert np.array_equal(small, data.per_class_subset(labels, 3, seed=1))
    assert not np.array_equal(small, data.per_class_subset(labels, 3, seed=2))
    assert len(data.per_class_subset(labels, None)) == 100
    with pytest.raises(ValueError, match="fewer than 30"):
        data.per_class_subset(labels, 30)
    with pytest.raises(ValueError, match="positive integer"):
        data.per_class_subset(labels, "5")


def test_a_stratified_validation_split_keeps_every_class_share():
    y = torch.tensor([1] * 10 + [0] * 90)
    for seed in range(5):
        loaders = data.make_loaders(
            torch.randn(100, 2), y, valid_fraction=0.2, stratify=True, seed=seed
        )
        held = torch.cat([b[1] for b in loaders.valid])
        assert len(held) == 20 and int(held.sum()) == 2  # 10 % of the validation rows, every seed
    plain = [
        int(
            torch.cat([b[1] for b in data.make_loaders(torch.randn(100, 2), y, seed=s).valid]).sum()
        )
        for s in range(8)
    ]
    assert len(set(plain)) > 1  # unstratified, the share varies with the seed
    with pytest.raises(ValueError, match="Cannot stratify"):
        data._split_indices(4, 0.5, 0, labels=[0, 0, 0, 1])
