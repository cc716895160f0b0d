"""dlnb.data.loaders: seeded splits, subsets and DataLoaders from tensors."""

import numpy as np
import pytest
import torch

from dlnb.data import loaders as data


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


def test_no_validation_split_and_bad_arguments():
    x, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    loaders = data.make_loaders(x, y, valid_fraction=0.0)
    assert loaders.valid is None and len(ids_of(loaders.train)) == 10
    with pytest.raises(ValueError, match="valid_fraction must be in"):
        data.make_loaders(x, y, valid_fraction=1.0)
    with pytest.raises(ValueError, match="x_train has 10 rows but y_train has 9"):
        data.make_loaders(x, y[:9])


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
