"""The small-data overfitting experiment of the CNN lesson: LeNet-5 on a few hundred MNIST digits,
trained long enough to memorise them, with and without regularisation, on several seeds.

Every seed draws its own class-balanced training subset (and initialisation) from MNIST's
training set; the validation images (held out of that set) and the test images are the same for
every seed, so the regimes of one seed are compared on the same images. Train accuracy is
measured in eval mode on the clean training images (no dropout, no augmentation) after every
epoch: the running average that `fit` reports is taken with both switched on.

    frame = overfit_experiment({"plain": Regime(), "augmentation": Regime(augment=True)}, [0, 1, 2])
    regularisation_gains(frame)   # per seed: test accuracy minus the plain model's
    overfit_summary(frame, n_test=2000)   # what the runs show, in words chosen by 95 % intervals
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlnb.claims import Effect, paired_effect, t_interval
from dlnb.data.loaders import Loaders, make_loaders
from dlnb.data.resident import GpuLoader
from dlnb.experiments import Method, data_efficiency
from dlnb.models import LeNet5
from dlnb.runtime import seed_everything
from dlnb.train.callbacks import Callback
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device
from dlnb.vision.datasets import mnist_augment, mnist_tensors
from dlnb.vision.story import said

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "CleanTrainAccuracy",
    "Regime",
    "fit_summary",
    "overfit_effects",
    "overfit_summary",
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


def fit_summary(
    epochs: int, train_loss: float, valid_loss: float, test_accuracy: float, n_test: int
) -> str:
    """The end of a run on plenty of data: is the validation loss near the training loss?"""
    if valid_loss <= train_loss:
        verdict = "The validation loss is no higher than the training loss"
    elif valid_loss <= 1.25 * train_loss:
        verdict = "The validation loss is only slightly above the training loss"
    else:
        verdict = (
            "The validation loss is clearly above the training loss: the model has started to "
            "memorise its training images"
        )
    if valid_loss <= 1.25 * train_loss:
        verdict += (
            ": with this much data the model learns patterns that generalise, not its training "
            "images"
        )
    return (
        f"After {epochs} epochs the training loss is {train_loss:.4f} (a running average over "
        f"the last epoch, while the weights were still moving) and the validation loss "
        f"{valid_loss:.4f}. {verdict}. Test accuracy: {test_accuracy:.4f} on {n_test:,} digits."
    )


def _by_seed(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    return frame[frame["method"] == method].set_index("seed").sort_index()


def overfit_effects(
    frame: pd.DataFrame, regime: str = "augmentation", baseline: str = "plain"
) -> dict[str, Effect]:
    """The paired effects over seeds of `regime` against `baseline`:

    - "test_gain": test accuracy, regime minus baseline (higher is better);
    - "gap_change": the train-minus-test gap, regime minus baseline (lower is better);
    - "gap_left": the regime's own clean train accuracy minus its test accuracy (the overfitting
      it leaves).
    """
    ours, theirs = _by_seed(frame, regime), _by_seed(frame, baseline)
    gap = {name: part["train_accuracy"] - part["test_accuracy"] for name, part in
           ((regime, ours), (baseline, theirs))}  # fmt: skip
    return {
        "test_gain": paired_effect(
            ours["test_accuracy"], theirs["test_accuracy"], names=(regime, baseline),
            metric="test accuracy",
        ),
        "gap_change": paired_effect(
            gap[regime], gap[baseline], names=(regime, baseline), metric="train-minus-test gap",
            higher_is_better=False,
        ),
        "gap_left": paired_effect(
            ours["train_accuracy"], ours["test_accuracy"],
            names=(f"{regime}'s clean train accuracy", "its test accuracy"), metric="accuracy",
        ),
    }  # fmt: skip


def _span(values: Sequence[float], digits: int = 3) -> str:
    low, high = min(values), max(values)
    if round(low, digits) == round(high, digits):
        return f"{low:.{digits}f} on every seed"
    return f"{low:.{digits}f} to {high:.{digits}f}"


def _interval_or_span(effect: Effect) -> str:
    """The effect's interval, or '0.037 on every seed' when the seeds agree to 3 decimals (an
    interval of zero width says nothing more)."""
    if round(effect.low, 3) == round(effect.high, 3):
        return _span(effect.per_pair)
    return effect.interval()


def _numbers(values: Sequence[int]) -> str:
    """'12' when every value is 12, else '9 to 14'."""
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low} to {high}"


def _memorising(frame: pd.DataFrame, baseline: str, threshold: float) -> str:
    """When the baseline's clean train accuracy first reaches `threshold`, and how its validation
    accuracy moves over the epochs after that (a t interval over seeds)."""
    runs = _by_seed(frame, baseline)
    epochs, rises, remaining = [], [], []
    for history in runs["history"]:
        reached = [
            e
            for e, a in zip(history["epoch"], history["clean_train_accuracy"], strict=True)
            if a >= threshold
        ]
        if not reached:
            return (
                f"On some seed its clean train accuracy never reached {threshold:.3f}: this run "
                "does not show memorisation on every seed."
            )
        valid = history["valid_accuracy"]
        epochs.append(reached[0])
        remaining.append(len(history) - reached[0])
        rises.append(valid[-1] - valid[reached[0] - 1])
    mean, low, high = t_interval(rises)
    interval = f"{mean:+.3f} on average (95 % CI {low:+.3f} to {high:+.3f}, {len(rises)} seeds)"
    after = f"over the remaining {_numbers(remaining)} epoch{'s' if max(remaining) != 1 else ''}"
    if low > 0:
        move = (
            f"its validation accuracy still rises, slowly: {interval} {after}. It keeps "
            "learning a little about new digits while there is nothing left to gain on its own"
        )
    elif high < 0:
        move = f"its validation accuracy then falls: {interval} {after}"
    else:
        move = f"its validation accuracy then barely moves: {interval} {after}, within noise"
    return f"Its clean train accuracy first reaches {threshold:.3f} at epoch {_span(epochs, 0)}; {move}."


def overfit_summary(
    frame: pd.DataFrame,
    n_test: int,
    regime: str = "augmentation",
    baseline: str = "plain",
    threshold: float = 1.0,
) -> str:
    """What the small-data runs show, as Markdown bullets: the baseline memorises (train and test
    accuracy, the gap, how validation moves after memorisation), then `regime`'s paired effects
    on test accuracy and on the gap, worded by their 95 % intervals."""
    plain = _by_seed(frame, baseline)
    gap = plain["train_accuracy"] - plain["test_accuracy"]
    effects = overfit_effects(frame, regime, baseline)
    gain, change, left = effects["test_gain"], effects["gap_change"], effects["gap_left"]
    digits = gain.diff * n_test
    first = (
        f"- **The {baseline} model memorises.** Its clean train accuracy ends at "
        f"{_span(plain['train_accuracy'])}, its test accuracy at {_span(plain['test_accuracy'], 4)}: "
        f"a gap of {_span(gap, 4)}. {_memorising(frame, baseline, threshold)}"
    )
    effect = {
        "better": f"**{regime.capitalize()} raises test accuracy** (about {digits:.0f} more of "
        f"the {n_test:,} test digits right, the same digits for both models).",
        "worse": f"**{regime.capitalize()} lowers test accuracy.**",
    }.get(gain.verdict, f"**{regime.capitalize()}'s effect on test accuracy is not resolved.**")
    narrows = {
        "better": "It narrows the gap between train and test accuracy.",
        "worse": "It widens the gap between train and test accuracy.",
    }.get(change.verdict, "Its effect on the gap between train and test accuracy is within noise.")
    remains = (
        f"It reduces overfitting; it does not remove it: its own gap is {_interval_or_span(left)}."
        if left.verdict == "better"
        else f"No gap is left that this run can resolve: {_interval_or_span(left)}."
    )
    second = f"- {effect} {said(gain)} {narrows} {said(change)} {remains}"
    return f"{first}\n{second}"
