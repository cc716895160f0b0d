"""Target tasks for transfer learning, and the networks that are trained on them.

A `Task` is a set of labelled images split once into a *pool* (every training set is drawn from
it), a *validation* set (every method tunes its settings on it) and a *test* set (every method
is scored on it). A `Network` says how to build a fresh copy of a network, pretrained or not,
how to turn the task's images into its inputs, and how to augment its training batches.
A `Setup` pairs a task with the pretrained network and the from-scratch one to compare.

- `new_digits_setup`: offline. LeNet-5 pretrained on some MNIST digits (0-4, `dlnb.vision.pretrain`)
  moved to the other digits (5-9), classes its source network never saw.
- `cifar_setup`: online. An ImageNet backbone on CIFAR-10's photographs (ImageNet's classes
  include kinds of CIFAR-10's objects: cats, dogs, trucks, ships...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from dlnb.data.loaders import per_class_subset, subset_indices
from dlnb.data.registry import load
from dlnb.models import LeNet5
from dlnb.vision.augment import TrainAugment, digit_augment, photo_augment
from dlnb.vision.backbones import load_backbone
from dlnb.vision.cifar import CIFAR10_CLASSES
from dlnb.vision.datasets import as_mnist
from dlnb.vision.preprocess import Preprocess
from dlnb.vision.pretrain import LENET_CUTS, lenet_headed

#: CIFAR-10's per-channel training mean and std (the usual published values).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class Task:
    """Labelled images (uint8 0..255 or floats in [0, 1]) and the rows of its three splits."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    pool: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are 0..num_classes-1)."""
        return len(self.classes)

    @property
    def pool_labels(self) -> np.ndarray:
        """The labels of the pool, in pool order (training sets index into them)."""
        return self.labels[self.pool]

    def pixels(self) -> torch.Tensor:
        """Every image as one row of raw pixel values in [0, 1] (N, pixels), float32."""
        flat = self.images.reshape(len(self.images), -1).astype(np.float32)
        return torch.from_numpy(flat / 255.0 if self.images.dtype == np.uint8 else flat)


def _split(labels: np.ndarray, pool_per_class: int, valid_per_class: int, seed: int):
    """Seeded, class-balanced validation rows, then pool rows out of the others; and the rest."""
    valid = per_class_subset(labels, valid_per_class, seed)
    others = np.setdiff1d(np.arange(len(labels)), valid)
    pool = others[per_class_subset(labels[others], pool_per_class, seed + 1)]
    return pool, valid, np.setdiff1d(others, pool)


def digits_task(pool_per_class: int = 30, valid_per_class: int = 20, seed: int = 0) -> Task:
    """scikit-learn's 1,797 8x8 digits (0..16 grey levels read as 0..1): pool, validation, and
    every other digit as the test set."""
    arrays = load("digits")
    labels = arrays["y"].astype(np.int64)
    pool, valid, test = _split(labels, pool_per_class, valid_per_class, seed)
    images = (arrays["x"] / 16.0).astype(np.float32)
    return Task("digits", images, labels, pool, valid, test, tuple("0123456789"))


def _only(arrays: dict, classes: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of `classes` only, labelled 0..k-1 in the order given (all: unchanged)."""
    x, y = arrays["x"], arrays["y"].astype(np.int64)
    if classes is None:
        return x, y
    keep = np.isin(y, classes)
    lookup = np.full(int(y.max()) + 1, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    return x[keep], lookup[y[keep]]


def image_task(
    dataset: str,
    pool_per_class: int = 30,
    valid_per_class: int = 20,
    test_size: int | None = 2000,
    seed: int = 0,
    classes: Sequence[int] | None = None,
) -> Task:
    """`mnist` or `cifar10` (online): pool and validation rows from its training split, a seeded
    `test_size` of its test split (all of it with None); with `classes`, only those classes,
    labelled 0..k-1 in the order given."""
    if dataset not in ("mnist", "cifar10"):
        raise ValueError(f"Unknown image dataset {dataset!r}: use 'mnist' or 'cifar10'.")
    names = CIFAR10_CLASSES if dataset == "cifar10" else tuple("0123456789")
    if classes is not None and (len(set(classes)) < 2 or not set(classes) <= set(range(10))):
        raise ValueError(f"classes must be at least two different labels 0-9, got {classes!r}.")
    (x_train, labels), (x_test, y_test) = (
        _only(load(dataset, split=split), classes) for split in ("train", "test")
    )
    pool, valid, _ = _split(labels, pool_per_class, valid_per_class, seed)
    keep = subset_indices(len(y_test), test_size, seed)
    images = np.concatenate([x_train[pool], x_train[valid], x_test[keep]])
    all_labels = np.concatenate([labels[pool], labels[valid], y_test[keep]])
    n_pool, n_valid = len(pool), len(valid)
    rows = np.arange(len(images))
    chosen = names if classes is None else tuple(names[c] for c in classes)
    name = dataset if classes is None else f"{dataset} {_listed(chosen)}"
    return Task(
        name,
        images,
        all_labels,
        rows[:n_pool],
        rows[n_pool : n_pool + n_valid],
        rows[n_pool + n_valid :],
        chosen,
    )


def _listed(names: Sequence[str]) -> str:
    """'5-9' for consecutive digits, else the names joined by commas."""
    if all(n.isdigit() for n in names):
        digits = [int(n) for n in names]
        if digits == list(range(digits[0], digits[0] + len(digits))):
            return f"{digits[0]}-{digits[-1]}"
    return ", ".join(names)


@dataclass(frozen=True)
class Network:
    """`build(num_classes)`: a fresh copy (with `.features(x)` and a linear `.head`);
    `prepare(images)`: the task's images as its inputs; `augment`: applied to training batches."""

    name: str
    build: Callable[[int], nn.Module]
    prepare: Callable[[np.ndarray], torch.Tensor]
    augment: TrainAugment | None = None


def lenet_network(
    prepare: Callable[[np.ndarray], torch.Tensor],
    weights: dict[str, torch.Tensor] | None = None,
    in_channels: int = 1,
    augment: TrainAugment | None = None,
    name: str = "LeNet-5",
    cut: str = "fc2",
) -> Network:
    """LeNet-5 with `weights` (a state dict, of any number of classes) or freshly initialised,
    cut after `cut` (`dlnb.vision.pretrain.LENET_CUTS`), and a new linear head."""
    if cut not in LENET_CUTS:
        raise ValueError(f"Unknown cut {cut!r}; choose from {list(LENET_CUTS)}.")
    source_classes = 10 if weights is None else int(weights["classifier.7.weight"].shape[0])

    def build(num_classes: int) -> nn.Module:
        model = LeNet5(num_classes=source_classes, in_channels=in_channels)
        if weights is not None:
            model.load_state_dict(weights)
        net = lenet_headed(model, cut)
        net.head = nn.Linear(net.num_features, num_classes)
        return net

    return Network(name, build, prepare, augment)


def imagenet_network(
    backbone: str = "efficientnet_lite0", image_size: int = 64, augment: TrainAugment | None = None
) -> Network:
    """An ImageNet backbone, its images resized to `image_size` and normalised as its weights
    expect; fine-tuning keeps its pretrained BatchNorm statistics."""
    _, preprocess = load_backbone(backbone, pretrained=False)

    def build(num_classes: int) -> nn.Module:
        model, _ = load_backbone(backbone, num_classes=num_classes)
        model.bn_stats_frozen = True  # batches of a few dozen images cannot re-estimate them
        return model

    return Network(f"{backbone} (ImageNet)", build, preprocess.at(image_size, crop=False), augment)


@dataclass
class Setup:
    """A target task, the pretrained network and the from-scratch one, and where the first comes from."""

    task: Task
    pretrained: Network
    scratch: Network | None
    source: str


def new_digits_setup(
    source: LeNet5,
    source_digits: Sequence[int] = (0, 1, 2, 3, 4),
    target_digits: Sequence[int] = (5, 6, 7, 8, 9),
    cut: str = "conv",
    scratch_cut: str = "fc2",
    *,
    pool_per_class: int = 30,
    valid_per_class: int = 40,
    test_size: int | None = 2000,
    seed: int = 0,
) -> Setup:
    """`source` (LeNet-5 trained on MNIST's `source_digits`) moved to MNIST's `target_digits`,
    classes it never saw, against LeNet-5 from scratch (cut at `scratch_cut`: the whole network by
    default). The pretrained network keeps its layers up to `cut` (its convolutions by default)
    under a new head; both train on randomly rotated, shifted, zoomed copies."""
    overlap = set(source_digits) & set(target_digits)
    if overlap:
        raise ValueError(f"The target's digits {sorted(overlap)} are among the source's.")
    weights = {k: v.detach().clone() for k, v in source.state_dict().items()}
    seen = _listed([str(d) for d in source_digits])
    prepare = partial(as_mnist, box=28)  # MNIST's own framing: normalised, not resized
    return Setup(
        image_task("mnist", pool_per_class, valid_per_class, test_size, seed, target_digits),
        lenet_network(prepare, weights, augment=digit_augment(), name=f"LeNet-5 ({seen})", cut=cut),
        lenet_network(prepare, augment=digit_augment(), name="LeNet-5 (scratch)", cut=scratch_cut),
        f"MNIST's training digits {seen}",
    )


def cifar_setup(
    backbone: str = "efficientnet_lite0",
    image_size: int = 64,
    pool_per_class: int = 30,
    valid_per_class: int = 20,
    test_size: int | None = 2000,
    seed: int = 0,
) -> Setup:
    """An ImageNet backbone against LeNet-5 from scratch (28x28 centre crops) on CIFAR-10; both
    trained on randomly shifted and flipped copies."""
    crop = Preprocess(28, 32, CIFAR_MEAN, CIFAR_STD)
    return Setup(
        image_task("cifar10", pool_per_class, valid_per_class, test_size, seed),
        imagenet_network(backbone, image_size, photo_augment(max(1, image_size // 16))),
        lenet_network(crop, in_channels=3, augment=photo_augment(2), name="LeNet-5 (scratch)"),
        "ImageNet's 1.28 million photographs",
    )
