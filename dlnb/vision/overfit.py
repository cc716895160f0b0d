"""The small-data overfitting experiment of the CNN lesson: LeNet-5 on a few hundred MNIST digits,
trained long enough to memorise them, with and without regularisation, on several seeds.

Every seed draws its own class-balanced training subset (and initialisation) from MNIST's
training set; the validation images (held out of that set) and the test images are the same for
every seed, so the regimes of one seed are compared on the same images. Train accuracy is
measured in eval mode on the clean training images (no dropout, no augmentation) after every
epoch: the running average that `fit` reports is taken with both switched on.

    frame = overfit_experiment({"plain": Regime(), "augmentation": Regime(augment=True)}, [0, 1, 2])
    regularisation_gains(frame)   # per seed: test accuracy minus the plain model's
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlnb.data.loaders import Loaders, make_loaders
from dlnb.data.resident import GpuLoader
from dlnb.experiments import Method, data_efficiency
from dlnb.models import LeNet5
from dlnb.runtime import seed_everything
from dlnb.train.callbacks import Callback
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device
from dlnb.vision.datasets import mnist_augment, mnist_tensors

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "CleanTrainAccuracy",
    "Regime",
    "SmallData",
    "overfit_experiment",
    "plot_overfit_curves",
    "regime_method",
    "regularisation_gains",
    "small_mnist",
]

#: The schedule that lets a plain LeNet-5 memorise 500 digits: 60 epochs, cosine-annealed AdamW.
LONG_SCHEDULE = TrainConfig(epochs=60, lr=2e-3, scheduler="cosine", progress=False)
#: Images per evaluation batch: on a CPU, LeNet-5 reads 500 faster than 1,000 (they fit in cache).
EVAL_BATCH_SIZE = 500


@dataclass(frozen=True)
class Regime:
    """How a run is regularised: label-preserving augmentation, dropout, weight decay."""

    augment: bool = False
    dropout: float = 0.0
    weight_decay: float = 0.0


@dataclass
class SmallData:
    """MNIST split for the experiment: a pool to draw training subsets from, validation, test."""

    x: torch.Tensor
    y: torch.Tensor
    pool: np.ndarray  # rows of (x, y) training subsets are drawn from
    valid: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]

    @property
    def pool_labels(self) -> np.ndarray:
        """The labels of the pool, for `dlnb.data.per_class_subset`."""
        return self.y[self.pool].numpy()


def small_mnist(n_valid: int = 1000, n_test: int | None = 2000, seed: int = 0) -> SmallData:
    """MNIST's training set less `n_valid` seeded validation images, and `n_test` test images."""
    x, y = mnist_tensors("train")
    order = np.random.default_rng(seed).permutation(len(y))
    valid = torch.as_tensor(np.sort(order[:n_valid]))
    return SmallData(
        x, y, np.sort(order[n_valid:]), (x[valid], y[valid]), mnist_tensors("test", n_test, seed)
    )


class CleanTrainAccuracy(Callback):
    """After each epoch, add `clean_train_accuracy` (eval mode, no augmentation) to the epoch's metrics."""

    def __init__(self, loader):
        self.loader = loader

    def on_epoch_end(self, state) -> None:
        metrics = evaluate(state.model, self.loader, state.config, device=state.device)
        state.epoch_metrics["clean_train_accuracy"] = metrics["accuracy"]


def regime_method(
    data: SmallData, regime: Regime, config: TrainConfig = LONG_SCHEDULE, batch_size: int = 64
) -> Method:
    """A `dlnb.experiments` method: LeNet-5 trained under `regime` on rows of the pool, measured.

    The result holds the clean train accuracy, the validation and test accuracy after the last
    epoch, the history (with `clean_train_accuracy` per epoch) and the model.
    """

    def run(indices: np.ndarray, seed: int) -> dict:
        rows = torch.as_tensor(data.pool[indices])
        x, y = data.x[rows], data.y[rows]
        train = make_loaders(
            x,
            y,
            valid_fraction=0.0,
            batch_size=batch_size,
            seed=seed,
            train_transform=mnist_augment() if regime.augment else None,
        ).train
        cfg = replace(config, seed=seed, weight_decay=regime.weight_decay)
        # Measured every epoch: resident batches, no per-image reads and collation.
        batched = partial(
            GpuLoader, batch_size=EVAL_BATCH_SIZE, shuffle=False, device=resolve_device(cfg)
        )
        loaders, clean = Loaders(train, batched(*data.valid), batched(*data.test)), batched(x, y)
        seed_everything(seed)
        model = LeNet5(dropout=regime.dropout)
        history = fit(model, loaders, cfg, [CleanTrainAccuracy(clean)])
        return {
            "train_accuracy": history.last("clean_train_accuracy"),
            "valid_accuracy": history.last("valid_accuracy"),
            "test_accuracy": evaluate(model, loaders.test, cfg)["accuracy"],
            "history": history,
            "model": model,
        }

    return run


def overfit_experiment(
    regimes: Mapping[str, Regime],
    seeds: Sequence[int],
    *,
    per_class: int = 50,
    data: SmallData | None = None,
    config: TrainConfig = LONG_SCHEDULE,
    log: Callable[[str], None] | None = print,
    progress: bool = False,
) -> pd.DataFrame:
    """Every regime on `per_class` training digits of each class, for every seed: a row per run.

    Columns: method (the regime's name), per_class, n_train, seed, seconds, train_accuracy (clean),
    valid_accuracy, test_accuracy and history. `config` sets the schedule and the device;
    `progress=True` shows a bar over the runs in a live notebook.
    """
    data = data or small_mnist()
    methods = {name: regime_method(data, regime, config) for name, regime in regimes.items()}
    return data_efficiency(
        methods, data.pool_labels, [per_class], seeds, keep=("history",), log=log, progress=progress
    )


def regularisation_gains(
    frame: pd.DataFrame, baseline: str = "plain", metric: str = "test_accuracy"
) -> pd.DataFrame:
    """Per seed (rows), every other regime's `metric` minus the baseline's (a column each)."""
    wide = frame.pivot(index="seed", columns="method", values=metric)
    if baseline not in wide:
        raise KeyError(f"No runs of the baseline {baseline!r}; the regimes are {list(wide)}.")
    others = [m for m in frame["method"].unique() if m != baseline]
    return wide[others].sub(wide[baseline], axis=0)


def plot_overfit_curves(frame: pd.DataFrame, seed: int | None = None) -> tuple[Figure, np.ndarray]:
    """Clean train and validation accuracy per epoch, a panel per regime, for one seed (the first)."""
    import matplotlib.pyplot as plt

    seed = frame["seed"].iloc[0] if seed is None else seed
    runs = frame[frame["seed"] == seed]
    fig, axs = plt.subplots(
        1, len(runs), figsize=(5.5 * len(runs), 3.5), sharey=True, squeeze=False
    )
    for ax, (_, run) in zip(axs[0], runs.iterrows(), strict=True):
        history = run["history"]
        ax.plot(history["epoch"], history["clean_train_accuracy"], label="train (eval mode)")
        ax.plot(history["epoch"], history["valid_accuracy"], label="validation")
        ax.set(title=f"{run['method']} (seed {seed})", xlabel="epoch", ylabel="accuracy")
        ax.set_ylim(0.8, 1.005)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    return fig, axs[0]
