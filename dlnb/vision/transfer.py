"""Three ways to reuse a pretrained backbone on a new task, and the data-efficiency experiment.

- `probe`: frozen pretrained features and a logistic-regression head (`dlnb.vision.finetune.linear_probe`).
- `fine_tune`: the pretrained network with that probe as its head, then trained end to end with a
  smaller learning rate for the backbone than for the head, stages unfrozen from the top down
  (`GradualUnfreezing`), and the pretrained BatchNorm statistics kept.
- `scratch`: the same architecture, randomly initialised, every layer trained; its BatchNorm
  statistics are recomputed on the training set afterwards (running averages lag behind weights
  that move fast in a short run).

`transfer_methods` hands them to `dlnb.experiments.data_efficiency`, which runs them on nested
training subsets (k labelled examples per class) for several seeds: one row per run with test
accuracy, train and test seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import make_loaders, subset_indices
from dlnb.data.registry import load
from dlnb.experiments import Method
from dlnb.runtime import Timer, pick_device
from dlnb.train.config import TrainConfig
from dlnb.train.history import History
from dlnb.train.loop import evaluate, fit, resolve_device
from dlnb.vision.backbones import TransferNet, load_backbone
from dlnb.vision.finetune import (
    GradualUnfreezing,
    discriminative_lr,
    extract_features,
    linear_probe,
)
from dlnb.vision.preprocess import Preprocess

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
    train, test = load(dataset, split="train"), load(dataset, split="test")
    pre = preprocess.at(image_size, crop=False)
    keep = subset_indices(len(test["y"]), test_size, seed)
    return Task(
        dataset,
        train["x"],
        train["y"],
        pre(test["x"][keep]),
        torch.from_numpy(test["y"][keep].astype(np.int64)),
        pre,
    )


def digit_augment(preprocess: Preprocess) -> Callable[[torch.Tensor], torch.Tensor]:
    """Small random rotations, shifts and zooms of a preprocessed image; the new border is black.

    No flips: a mirrored digit is not the same digit.
    """
    from torchvision.transforms import v2

    black = [(0.0 - m) / s for m, s in zip(preprocess.mean, preprocess.std, strict=True)]
    return v2.RandomAffine(degrees=12, translate=(0.1, 0.1), scale=(0.85, 1.15), fill=black)


@dataclass(frozen=True)
class Recipe:
    """Settings of the three methods; `train` and `batch_size` are shared by fine-tuning and scratch.

    `train` is the `TrainConfig` of both networks (each run sets its seed) and names the device of
    all three methods; `train.lr` is the scratch network's rate, while fine-tuning uses `head_lr`
    and `backbone_lr`. An epoch shows at least `min_epoch_samples` images: tiny training sets are
    repeated, so a run on 50 images still takes enough optimizer steps to learn. With `augment`,
    the networks see a fresh random transformation of each image every time, and the probe is
    fitted on the features of the images plus `probe_augment_copies` augmented copies of each.
    """

    backbone: str = "efficientnet_lite0"
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=3, scheduler="onecycle", weight_decay=0.01, progress=False
        )
    )
    batch_size: int = 32
    min_epoch_samples: int = 256
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    unfreeze_per_epoch: int = 3
    probe_c: float = 1.0
    augment: bool = False
    probe_augment_copies: int = 4


def _train_loaders(x: torch.Tensor, y: torch.Tensor, task: Task, recipe: Recipe, seed: int):
    repeats = math.ceil(recipe.min_epoch_samples / len(x))
    if repeats > 1:
        x, y = x.repeat(repeats, 1, 1, 1), y.repeat(repeats)
    transform = digit_augment(task.preprocess) if recipe.augment else None
    return make_loaders(
        x, y, batch_size=recipe.batch_size, valid_fraction=0.0, seed=seed, train_transform=transform
    )


def _test(model: TransferNet, task: Task, device: torch.device) -> dict:
    with Timer(device) as t:
        accuracy = evaluate(model, task.test_loader(), device=device)["accuracy"]
    return {"test_accuracy": accuracy, "test_seconds": t.seconds}


def probe(
    task: Task,
    indices: np.ndarray,
    recipe: Recipe,
    seed: int = 0,
    test_features: torch.Tensor | None = None,
    *,
    device: torch.device | None = None,
) -> tuple[TransferNet, dict]:
    """Frozen features + logistic regression. Pass precomputed `test_features` to skip that pass.

    `device` is the run's resolved device; by default `resolve_device(recipe.train)`.
    """
    device = device or resolve_device(recipe.train)
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
        return model, {"train_seconds": t.seconds, **_test(model, task, device)}
    with torch.no_grad():
        accuracy = (model.head(test_features).argmax(1) == task.y_test).float().mean().item()
    return model, {"train_seconds": t.seconds, "test_accuracy": accuracy}


def fine_tune(
    task: Task,
    indices: np.ndarray,
    recipe: Recipe,
    seed: int = 0,
    *,
    device: torch.device | None = None,
) -> tuple[TransferNet, History, dict]:
    """Probe head first, then end-to-end training with per-stage rates and gradual unfreezing.

    `device` is the run's resolved device; by default `resolve_device(recipe.train)`.
    """
    device = device or resolve_device(recipe.train)
    model, _ = load_backbone(recipe.backbone, num_classes=task.num_classes)
    x, y = task.train_set(indices)
    with Timer(device) as t:
        model.head = linear_probe(
            extract_features(model, x, device=device), y, task.num_classes, C=recipe.probe_c
        )
        model.bn_stats_frozen = True
        config = replace(
            recipe.train,
            seed=seed,
            param_groups=discriminative_lr(recipe.head_lr, recipe.backbone_lr),
        )
        history = fit(
            model,
            _train_loaders(x, y, task, recipe, seed),
            config,
            [GradualUnfreezing(recipe.unfreeze_per_epoch)],
            device=device,
        )
    return model, history, {"train_seconds": t.seconds, **_test(model, task, device)}


def recalibrate_batchnorm(
    model: TransferNet, x: torch.Tensor, device: str | torch.device = "auto", batch_size: int = 256
) -> None:
    """Recompute every BatchNorm layer's running statistics as exact averages over images `x`."""
    from torch.optim.swa_utils import update_bn

    device = pick_device(device)
    model.to(device)
    update_bn(DataLoader(TensorDataset(x), batch_size=batch_size), model, device=device)


def scratch(
    task: Task,
    indices: np.ndarray,
    recipe: Recipe,
    seed: int = 0,
    *,
    device: torch.device | None = None,
) -> tuple[TransferNet, History, dict]:
    """The same architecture from a random initialisation, every layer trained at `train.lr`.

    `device` is the run's resolved device; by default `resolve_device(recipe.train)`.
    """
    device = device or resolve_device(recipe.train)
    torch.manual_seed(seed)
    model, _ = load_backbone(recipe.backbone, pretrained=False, num_classes=task.num_classes)
    x, y = task.train_set(indices)
    with Timer(device) as t:
        history = fit(
            model,
            _train_loaders(x, y, task, recipe, seed),
            replace(recipe.train, seed=seed),
            device=device,
        )
        recalibrate_batchnorm(model, x, device)
    return model, history, {"train_seconds": t.seconds, **_test(model, task, device)}


def transfer_methods(
    task: Task, recipe: Recipe, methods: Sequence[str] = METHODS
) -> dict[str, Method]:
    """The methods as runs for `dlnb.experiments.data_efficiency`: name -> run(indices, seed).

    Every run uses one device, `resolve_device(recipe.train)`. The probe's test features are
    extracted once, here (its `test_seconds` is that pass); the networks' results hold their
    training `history` (keep it with `data_efficiency(..., keep=("history",))`).
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {METHODS}.")
    device = resolve_device(recipe.train)
    runs: dict[str, Method] = {}
    if "probe" in methods:
        backbone, _ = load_backbone(recipe.backbone)
        with Timer(device) as t:
            test_features = extract_features(backbone, task.x_test, device=device)

        def run_probe(indices: np.ndarray, seed: int) -> dict:
            _, row = probe(task, indices, recipe, seed, test_features, device=device)
            return {**row, "test_seconds": t.seconds}  # one pass over the test set

        runs["probe"] = run_probe

    def network(train: Callable) -> Method:
        def run(indices: np.ndarray, seed: int) -> dict:
            _, history, row = train(task, indices, recipe, seed, device=device)
            return {**row, "history": history}

        return run

    runs |= {"fine_tune": network(fine_tune), "scratch": network(scratch)}
    return {name: runs[name] for name in methods}
