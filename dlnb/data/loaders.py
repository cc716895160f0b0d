"""Loaders: seeded train/validation splits and subsets, and the loaders every area builds on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from dlnb.data.arrays import num_rows, rows
from dlnb.data.resident import GpuLoader
from dlnb.runtime import pick_device


@dataclass
class Loaders:
    """Train, validation and test loaders, DataLoaders or `GpuLoader`s (valid, test may be None)."""

    train: object
    valid: object = None
    test: object = None


class PairDataset:
    """(x, y) pairs read row by row from tensors, arrays, lists or a tuple of inputs.

    `transform`, when given, is applied to each x as it is read.
    """

    def __init__(self, x: Any, y: Any, transform: Callable | None = None):
        if num_rows(x) != len(y):
            raise ValueError(f"x has {num_rows(x)} rows but y has {len(y)}.")
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = rows(self.x, i)
        return (self.transform(x) if self.transform else x), self.y[i]


def _split_indices(
    n: int, valid_fraction: float, seed: int, labels: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `range(n)` into train and validation indices, stratified by
    `labels` when given (every class keeps its share in both parts)."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}.")
    if labels is not None and valid_fraction > 0:
        from sklearn.model_selection import train_test_split

        labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels to stratify {n} rows.")
        try:
            train, valid = train_test_split(
                np.arange(n), test_size=valid_fraction, random_state=seed, stratify=labels
            )
        except ValueError as exc:  # a class with a single example, or too few rows
            raise ValueError(
                f"Cannot stratify the validation split: {exc}. Use stratify=False, or a larger "
                "valid_fraction."
            ) from exc
        return np.sort(train), np.sort(valid)
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * valid_fraction))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def subset_indices(n: int, size: int | None, seed: int) -> np.ndarray:
    """`size` seeded random indices out of `n` (all of them when size is None)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def per_class_subset(
    labels: Sequence | np.ndarray, per_class: int | None, seed: int = 0
) -> np.ndarray:
    """Indices of `per_class` seeded random examples of each class (all when None), sorted.

    For one seed the subsets are nested: the 5-per-class subset is inside the 20-per-class one.
    """
    if per_class is not None and (not isinstance(per_class, (int, np.integer)) or per_class < 1):
        raise ValueError(f"per_class must be a positive integer or None (all), got {per_class!r}.")
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    if per_class is None:
        return np.sort(order)
    picked = []
    for c in np.unique(labels):
        of_class = order[labels[order] == c]
        if len(of_class) < per_class:
            raise ValueError(
                f"Class {c} has only {len(of_class)} examples, fewer than {per_class}."
            )
        picked.append(of_class[:per_class])
    return np.sort(np.concatenate(picked))


def _check_options(
    valid: tuple | None, valid_fraction: float | None, device, augment: bool, host_only: list
) -> None:
    if valid is not None and valid_fraction:
        raise ValueError(
            "Pass a validation split of your own (valid=(x, y)) or a valid_fraction to hold "
            "out of the training set, not both."
        )
    if device is None and augment:
        raise ValueError(
            "translate and flip augment device-resident batches: pass device=... as well, or "
            "augment each example with train_transform."
        )
    if device is not None and host_only:
        raise ValueError(
            f"{', '.join(host_only)} configure DataLoaders; with device=... the batches are "
            "slices of tensors resident on the device (augment them with translate and flip)."
        )


def _host_loader(
    x: Any,
    y: Any,
    index: np.ndarray | None,
    size: int,
    train: bool,
    seed: int,
    transform: Callable | None,
    collate_fn: Callable | None,
    num_workers: int,
) -> DataLoader:
    """A DataLoader of rows `index` (all when None): shuffled by `seed` and transformed for train."""
    dataset: Any = PairDataset(x, y, transform if train else None)
    if index is not None:
        dataset = Subset(dataset, index.tolist())
    return DataLoader(
        dataset,
        batch_size=size,
        shuffle=train,
        generator=torch.Generator().manual_seed(seed) if train else None,
        collate_fn=collate_fn,
        num_workers=num_workers,
    )


def _resident_loader(
    x: Any,
    y: Any,
    index: np.ndarray | None,
    size: int,
    train: bool,
    device: torch.device,
    seed: int,
    translate: int,
    flip: bool,
) -> GpuLoader:
    """A `GpuLoader` of rows `index` (all when None) on `device`, shuffled and augmented for train."""
    if index is not None:
        picked = torch.as_tensor(index)
        x, y = rows(x, picked), y[picked]
    return GpuLoader(
        x,
        y,
        size,
        shuffle=train,
        device=device,
        seed=seed,
        translate=translate if train else 0,
        flip=flip and train,
    )


def make_loaders(
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    y_test: Any = None,
    *,
    valid: tuple | None = None,
    batch_size: int = 128,
    eval_batch_size: int | None = None,
    valid_fraction: float | None = None,
    seed: int = 0,
    train_transform: Callable | None = None,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    translate: int = 0,
    flip: bool = False,
    stratify: bool = False,
) -> Loaders:
    """Loaders of every split: a seeded shuffle for train, a seeded validation split held out of it.

    Without `device` the loaders are DataLoaders; with it every split is moved to the device once
    and shuffled, batched and augmented there: `GpuLoader`s, with the same seeded split.

    Args:
        x_train: training inputs: a tensor, an array, a list (e.g. token ids of varying lengths,
            batched by a `collate_fn`) or a tuple of inputs (the model is called as `model(*x)`).
        y_train: training targets, one per row of `x_train`.
        x_test: test inputs (optional), batched in order.
        y_test: test targets, one per row of `x_test`.
        valid: a validation split of your own, `(x, y)`, instead of one held out of train.
        batch_size: training batch size.
        eval_batch_size: batch size of valid and test (default `batch_size`), batched in order.
        valid_fraction: share of the training rows held out for validation (0.1 by default; 0
            when `valid` is given).
        seed: seeds the validation split and the training shuffle (and augmentation).
        train_transform: applied to each training example as it is read (host loaders only).
        collate_fn: how a DataLoader merges examples into a batch (host loaders only).
        num_workers: DataLoader worker processes (host loaders only).
        device: "auto", "cuda", a `torch.device`...: device-resident `GpuLoader`s.
        translate: shift training images by up to this many pixels (with `device`).
        flip: mirror a random half of each training batch left to right (with `device`).
        stratify: keep every class's share of `y_train` in the validation split.
    """
    host_only = [
        name
        for name, value in (
            ("train_transform", train_transform),
            ("collate_fn", collate_fn),
            ("num_workers", num_workers),
        )
        if value
    ]
    _check_options(valid, valid_fraction, device, bool(translate or flip), host_only)
    if num_rows(x_train) != len(y_train):
        raise ValueError(f"x_train has {num_rows(x_train)} rows but y_train has {len(y_train)}.")
    if valid_fraction is None:
        valid_fraction = 0.0 if valid is not None else 0.1
    strata = y_train if stratify else None
    train_idx, valid_idx = _split_indices(len(y_train), valid_fraction, seed, strata)
    resident = pick_device(device) if isinstance(device, str) else device

    def build(x: Any, y: Any, index: np.ndarray | None = None, train: bool = False) -> object:
        size = batch_size if train else eval_batch_size or batch_size
        if resident is not None:
            return _resident_loader(x, y, index, size, train, resident, seed, translate, flip)
        return _host_loader(
            x, y, index, size, train, seed, train_transform, collate_fn, num_workers
        )

    train = build(x_train, y_train, train_idx, train=True)
    if valid is not None:
        valid_loader = build(*valid)
    else:
        valid_loader = build(x_train, y_train, valid_idx) if len(valid_idx) else None
    test = build(x_test, y_test) if x_test is not None else None
    return Loaders(train, valid_loader, test)
