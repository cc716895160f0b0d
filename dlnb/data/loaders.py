"""Loaders: seeded train/validation splits and DataLoaders built from tensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Loaders:
    """Train, validation and test DataLoaders (valid and test may be None)."""

    train: object
    valid: object = None
    test: object = None


class TransformDataset:
    """A (x, y) tensor dataset that applies `transform` to each x when it is read."""

    def __init__(self, x, y, transform: Callable):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def split_indices(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `range(n)` into train and validation indices."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}.")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * valid_fraction))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def subset_indices(n: int, size: int | None, seed: int) -> np.ndarray:
    """`size` seeded random indices out of `n` (all of them when size is None)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def make_loaders(
    x_train,
    y_train,
    x_test=None,
    y_test=None,
    *,
    batch_size: int = 128,
    valid_fraction: float = 0.1,
    seed: int = 0,
    train_transform: Callable | None = None,
    num_workers: int = 0,
) -> Loaders:
    """DataLoaders from tensors: a seeded shuffle for train, a seeded held-out validation split."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    if len(x_train) != len(y_train):
        raise ValueError(f"x_train has {len(x_train)} rows but y_train has {len(y_train)}.")
    train_idx, valid_idx = split_indices(len(x_train), valid_fraction, seed)
    train_idx, valid_idx = torch.as_tensor(train_idx), torch.as_tensor(valid_idx)
    xt, yt = x_train[train_idx], y_train[train_idx]
    train_ds = (
        TransformDataset(xt, yt, train_transform) if train_transform else TensorDataset(xt, yt)
    )
    generator = torch.Generator().manual_seed(seed)
    common = {"batch_size": batch_size, "num_workers": num_workers}
    train = DataLoader(train_ds, shuffle=True, generator=generator, **common)
    valid = (
        DataLoader(TensorDataset(x_train[valid_idx], y_train[valid_idx]), **common)
        if len(valid_idx)
        else None
    )
    test = DataLoader(TensorDataset(x_test, y_test), **common) if x_test is not None else None
    return Loaders(train, valid, test)
