"""Three ways to reuse a pretrained backbone on a new task, and the data-efficiency experiment.

- `probe`: frozen pretrained features and a logistic-regression head (`dlnb.vision.finetune.linear_probe`).
- `fine_tune`: the pretrained network with that probe as its head, then trained end to end with a
  smaller learning rate for the backbone than for the head, stages unfrozen from the top down
  (`GradualUnfreezing`), and the pretrained BatchNorm statistics kept.
- `scratch`: the same architecture, randomly initialised, every layer trained; its BatchNorm
  statistics are recomputed on the training set afterwards (running averages lag behind weights
  that move fast in a short run).

`data_efficiency` runs them on nested training subsets (k labelled examples per class) for several
seeds and returns one row per run: test accuracy, train and test seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import make_loaders
from dlnb.data.registry import load
from dlnb.runtime import Timer, pick_device
from dlnb.train.history import History
from dlnb.train.loop import TrainConfig, evaluate, fit
from dlnb.vision.backbones import Preprocess, TransferNet, load_backbone
from dlnb.vision.finetune import (
    GradualUnfreezing,
    discriminative_lr,
    extract_features,
    linear_probe,
    per_class_subset,
)

METHODS = ("probe", "fine_tune", "scratch")


@dataclass
class Task:
    """A classification task for a backbone: a raw labelled pool to draw training sets from and a
    preprocessed test set. `train_set(indices)` preprocesses only the images it is asked for."""

    name: str
    pool_images: np.ndarray
    pool_labels: np.ndarray
    x_test: torch.Tensor
    y_test: torch.Tensor
    preprocess: Preprocess

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are 0..num_classes-1)."""
        return int(self.pool_labels.max()) + 1

    def train_set(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed images and int64 labels of the pool rows `indices`."""
        return (
            self.preprocess(self.pool_images[indices]),
            torch.from_numpy(self.pool_labels[indices].astype(np.int64)),
        )

    def test_loader(self, batch_size: int = 256) -> DataLoader:
        """The test set, batched in order."""
        return DataLoader(TensorDataset(self.x_test, self.y_test), batch_size=batch_size)


def image_task(
    dataset: str,
    preprocess: Preprocess,
    image_size: int,
    test_size: int | None = None,
    seed: int = 0,
) -> Task:
    """A registry image dataset (`mnist` offline, `cifar10` online) resized and normalised for the backbone.

    The normalisation is the backbone's own (fixed by its pretraining), so no statistic is fitted
    on any split here. `test_size` draws a seeded subset of the test images.
    """
    if dataset not in ("mnist", "cifar10"):
        raise ValueError(
            f"Unknown target dataset {dataset!r}: use 'mnist' (offline) or 'cifar10' (online)."
        )
    arrays = load(dataset)
    pre = preprocess.at(image_size, crop=False)
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if test_size is not None and test_size < len(x_test):
        keep = np.sort(np.random.default_rng(seed).choice(len(x_test), test_size, replace=False))
        x_test, y_test = x_test[keep], y_test[keep]
    return Task(
        dataset,
        arrays["x_train"],
        arrays["y_train"],
        pre(x_test),
        torch.from_numpy(y_test.astype(np.int64)),
        pre,
    )


def mnist_task(
    preprocess: Preprocess, image_size: int, test_size: int | None = None, seed: int = 0
) -> Task:
    """MNIST digits as RGB images of `image_size` pixels (see `image_task`)."""
    return image_task("mnist", preprocess, image_size, test_size, seed)


def digit_augment(preprocess: Preprocess) -> Callable[[torch.Tensor], torch.Tensor]:
    """Small random rotations, shifts and zooms of a preprocessed image; the new border is black.

    No flips: a mirrored digit is not the same digit.
    """
    from torchvision.transforms import v2

    black = [(0.0 - m) / s for m, s in zip(preprocess.mean, preprocess.std, strict=True)]
    return v2.RandomAffine(degrees=12, translate=(0.1, 0.1), scale=(0.85, 1.15), fill=black)


@dataclass(frozen=True)
class Recipe:
    """Settings of the three methods; `epochs` and `batch_size` are shared by fine-tuning and scratch.

    An epoch shows at least `min_epoch_samples` images: tiny training sets are repeated, so a run
    on 50 images still takes enough optimizer steps to learn. With `augment`, the networks see
    a fresh random transformation of each image every time, and the probe is fitted on the
    features of the images plus `probe_augment_copies` augmented copies of each.
    """

    backbone: str = "efficientnet_lite0"
    epochs: int = 3
    batch_size: int = 32
    min_epoch_samples: int = 256
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    unfreeze_per_epoch: int = 3
    scratch_lr: float = 1e-3
    weight_decay: float = 0.01
    probe_c: float = 1.0
    augment: bool = False
    probe_augment_copies: int = 4
    device: str = "auto"


def _train_loaders(x: torch.Tensor, y: torch.Tensor, task: Task, recipe: Recipe, seed: int):
    repeats = math.ceil(recipe.min_epoch_samples / len(x))
    if repeats > 1:
        x, y = x.repeat(repeats, 1, 1, 1), y.repeat(repeats)
    transform = digit_augment(task.preprocess) if recipe.augment else None
    return make_loaders(
        x, y, batch_size=recipe.batch_size, valid_fraction=0.0, seed=seed, train_transform=transform
    )


def _config(recipe: Recipe, seed: int, **kwargs) -> TrainConfig:
    return TrainConfig(
        epochs=recipe.epochs,
        scheduler="onecycle",
        weight_decay=recipe.weight_decay,
        seed=seed,
        device=recipe.device,
        progress=False,
        **kwargs,
    )


def _test(model: TransferNet, task: Task, recipe: Recipe) -> dict:
    device = pick_device(recipe.device)
    with Timer(device) as t:
        accuracy = evaluate(model, task.test_loader(), device)["accuracy"]
    return {"test_accuracy": accuracy, "test_seconds": t.seconds}


def probe(
    task: Task,
    indices: np.ndarray,
    recipe: Recipe,
    seed: int = 0,
    test_features: torch.Tensor | None = None,
) -> tuple[TransferNet, dict]:
    """Frozen features + logistic regression. Pass precomputed `test_features` to skip that pass."""
    device = pick_device(recipe.device)
    model, _ = load_backbone(recipe.backbone, num_classes=task.num_classes)
    x, y = task.train_set(indices)
    with Timer(device) as t:
        if recipe.augment and recipe.probe_augment_copies:
            torch.manual_seed(seed)
            augment = digit_augment(task.preprocess)
            copies = x.repeat(recipe.probe_augment_copies, 1, 1, 1)
            x = torch.cat([x, torch.stack([augment(image) for image in copies])])
            y = y.repeat(recipe.probe_augment_copies + 1)
        model.head = linear_probe(
            extract_features(model, x, device=device), y, task.num_classes, C=recipe.probe_c
        )
    if test_features is None:
        return model, {"train_seconds": t.seconds, **_test(model, task, recipe)}
    with torch.no_grad():
        accuracy = (model.head(test_features).argmax(1) == task.y_test).float().mean().item()
    return model, {"train_seconds": t.seconds, "test_accuracy": accuracy}


def fine_tune(
    task: Task, indices: np.ndarray, recipe: Recipe, seed: int = 0
) -> tuple[TransferNet, History, dict]:
    """Probe head first, then end-to-end training with per-stage rates and gradual unfreezing."""
    device = pick_device(recipe.device)
    model, _ = load_backbone(recipe.backbone, num_classes=task.num_classes)
    x, y = task.train_set(indices)
    with Timer(device) as t:
        model.head = linear_probe(
            extract_features(model, x, device=device), y, task.num_classes, C=recipe.probe_c
        )
        model.bn_stats_frozen = True
        config = _config(
            recipe, seed, param_groups=discriminative_lr(recipe.head_lr, recipe.backbone_lr)
        )
        history = fit(
            model,
            _train_loaders(x, y, task, recipe, seed),
            config,
            [GradualUnfreezing(recipe.unfreeze_per_epoch)],
        )
    return model, history, {"train_seconds": t.seconds, **_test(model, task, recipe)}


def recalibrate_batchnorm(
    model: TransferNet, x: torch.Tensor, device: str | torch.device = "auto", batch_size: int = 256
) -> None:
    """Recompute every BatchNorm layer's running statistics as exact averages over images `x`."""
    from torch.optim.swa_utils import update_bn

    device = pick_device(device)
    model.to(device)
    update_bn(DataLoader(x, batch_size=batch_size), model, device=device)


def scratch(
    task: Task, indices: np.ndarray, recipe: Recipe, seed: int = 0
) -> tuple[TransferNet, History, dict]:
    """The same architecture from a random initialisation, every layer trained."""
    device = pick_device(recipe.device)
    torch.manual_seed(seed)
    model, _ = load_backbone(recipe.backbone, pretrained=False, num_classes=task.num_classes)
    x, y = task.train_set(indices)
    with Timer(device) as t:
        history = fit(
            model,
            _train_loaders(x, y, task, recipe, seed),
            _config(recipe, seed, lr=recipe.scratch_lr),
        )
        recalibrate_batchnorm(model, x, device)
    return model, history, {"train_seconds": t.seconds, **_test(model, task, recipe)}


def data_efficiency(
    task: Task,
    sizes: Sequence[int | None],
    seeds: Sequence[int],
    recipe: Recipe,
    methods: Sequence[str] = METHODS,
    log: Callable[[str], None] | None = print,
):
    """Run each method on k labelled examples per class (None: the whole pool) for each seed.

    Returns `(frame, histories)`: one row per run (method, per_class, n_train, seed,
    test_accuracy, train_seconds, test_seconds) and the training History of each network run,
    keyed by (method, per_class, seed).
    """
    import pandas as pd

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {METHODS}.")
    rows, histories = [], {}
    device = pick_device(recipe.device)
    test_features, probe_test_seconds = None, None
    if "probe" in methods:
        backbone, _ = load_backbone(recipe.backbone)
        with Timer(device) as t:
            test_features = extract_features(backbone, task.x_test, device=device)
        probe_test_seconds = t.seconds
    for per_class in sizes:
        for seed in seeds:
            indices = per_class_subset(task.pool_labels, per_class, seed)
            for method in methods:
                if method == "probe":
                    _, row = probe(task, indices, recipe, seed, test_features)
                    row["test_seconds"] = probe_test_seconds  # one pass over the test set
                else:
                    run = fine_tune if method == "fine_tune" else scratch
                    _, histories[(method, per_class, seed)], row = run(task, indices, recipe, seed)
                rows.append(
                    {
                        "method": method,
                        "per_class": per_class or len(indices) // task.num_classes,
                        "n_train": len(indices),
                        "seed": seed,
                        **row,
                    }
                )
                if log:
                    r = rows[-1]
                    log(
                        f"{method:>9}  {r['per_class']:>5}/class  seed {seed}  "
                        f"accuracy {r['test_accuracy']:.3f}  train {r['train_seconds']:.1f}s"
                    )
    return pd.DataFrame(rows), histories


def plot_curve(frame, metric: str = "test_accuracy", ax=None, logy: bool = False):
    """Mean and min-max band over seeds of `metric` against labelled examples per class."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for method, group in frame.groupby("method", sort=False):
        stats = group.groupby("per_class")[metric].agg(["mean", "min", "max"])
        ax.plot(stats.index, stats["mean"], marker="o", label=method)
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig, ax
