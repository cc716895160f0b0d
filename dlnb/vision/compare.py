"""Reading the transfer experiment (`dlnb.vision.transfer`): tables with 95 % intervals, a figure,
the paired effects the lesson states, the baselines' checks and the longer-training control.

    claims = transfer_effects(frame, setup.task)
    claims.headline[2].sentence()   # best pretrained vs best baseline at 2 per class
    longer_training(setup, budget, frame, size=2, seeds=[0, 1, 2]).against   # vs the strongest
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlnb.claims import BaselineCheck, Effect, effect_from_frame, learned, majority_rate, t_interval
from dlnb.experiments import best_effects, data_efficiency
from dlnb.models import LeNet5
from dlnb.vision.story import METHOD_NAMES
from dlnb.vision.targets import Setup, Task
from dlnb.vision.transfer import BASELINES, PRETRAINED, Budget, transfer_methods

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure


@torch.no_grad()
def source_guesses(source: LeNet5, setup: Setup, source_classes: Sequence[str]) -> pd.DataFrame:
    """How the source network, as it is, labels the target's test images: one row per target
    class, one column per source class, the share of that row's images given that label."""
    import pandas as pd

    task = setup.task
    predicted = source.eval()(setup.pretrained.prepare(task.images[task.test])).argmax(1).numpy()
    truth = task.labels[task.test]
    shares = np.array(
        [
            np.bincount(predicted[truth == c], minlength=len(source_classes))
            for c in range(task.num_classes)
        ]
    )
    shares = shares / shares.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        shares,
        index=pd.Index(task.classes, name="true digit"),
        columns=pd.Index(list(source_classes), name="the source's answer"),
    )


def results_table(frame: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean `metric` over seeds and its t-based 95 % interval, per size and method."""
    import pandas as pd

    rows = []
    for (size, method), part in frame.groupby(["per_class", "method"], sort=False):
        mean, low, high = t_interval(part[metric].to_numpy())
        rows.append(
            {
                "per class": size,
                "method": METHOD_NAMES.get(str(method), str(method)),
                "mean": mean,
                "95% low": low,
                "95% high": high,
                "seeds": len(part),
            }
        )
    return pd.DataFrame(rows).set_index(["per class", "method"])


def plot_transfer(
    frame: pd.DataFrame,
    metric: str = "test_accuracy",
    chance: float | None = None,
    ax: Axes | None = None,
) -> tuple[Figure | SubFigure, Axes]:
    """`metric` against labelled examples per class, one line per method: the mean over seeds
    with its 95 % interval as error bars (sizes on a log axis)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    table = results_table(frame, metric).reset_index()
    sizes = sorted(table["per class"].unique())
    for i, (method, part) in enumerate(table.groupby("method", sort=False)):
        x = np.asarray(part["per class"], dtype=float) * (1 + 0.03 * (i - 1.5))  # side by side
        errors = [part["mean"] - part["95% low"], part["95% high"] - part["mean"]]
        ax.errorbar(x, part["mean"], yerr=errors, marker="o", capsize=4, label=method)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="best constant guess")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="labelled examples per class", ylabel=metric.replace("_", " "),
           title="Mean over seeds, with 95 % intervals")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax.figure, ax


def constant_rate(task: Task) -> float:
    """The test accuracy of the best constant guess: the share of the test set's most frequent
    class (the training sets are balanced, so their majority class says nothing; this is the
    highest any constant answer can score)."""
    return majority_rate(task.labels[task.test].tolist(), task.labels[task.test].tolist())


def baseline_checks(
    frame: pd.DataFrame, task: Task, size: int, margin: float = 0.05
) -> dict[str, BaselineCheck]:
    """`dlnb.claims.learned` for each baseline at `size` (method -> check): its test accuracy over
    seeds against the best constant guess (`constant_rate`)."""
    reference = constant_rate(task)
    part = frame[frame.per_class == size]
    return {
        m: learned(
            f"{METHOD_NAMES[m]} ({size}/class)",
            part[part.method == m]["test_accuracy"],
            reference,
            margin=margin,
            reference_name="the best constant guess",
        )
        for m in BASELINES
        if m in set(part.method)
    }


@dataclass(frozen=True)
class TransferClaims:
    """The lesson's claims about the four methods.

    `headline`: size -> the best pretrained method against the best baseline (each picked on
    validation); `best`: size -> the pretrained method picked; `fine_tune`: size -> fine-tuning
    against the probe; `checks`: baseline -> did it learn, at the smallest size.
    """

    headline: dict[int, Effect]
    best: dict[int, str]
    fine_tune: dict[int, Effect]
    checks: dict[str, BaselineCheck]


def transfer_effects(frame: pd.DataFrame, task: Task, margin: float = 0.05) -> TransferClaims:
    """The paired effects and baseline checks the lesson states (see `TransferClaims`)."""
    methods = set(frame.method)
    pretrained = [m for m in PRETRAINED if m in methods]
    headline = best_effects(
        frame, pretrained, [m for m in BASELINES if m in methods], names=METHOD_NAMES
    )
    names = {METHOD_NAMES[m]: m for m in pretrained}
    fine_tune: dict[int, Effect] = {}
    if {"fine_tune", "probe"} <= methods:
        for size, part in frame.groupby("per_class"):
            fine_tune[int(size)] = effect_from_frame(
                part, "fine_tune", "probe", names=("fine-tuning", "the linear probe")
            )
    return TransferClaims(
        headline=headline,
        best={size: names[effect.ours] for size, effect in headline.items()},
        fine_tune=fine_tune,
        checks=baseline_checks(frame, task, int(frame.per_class.min()), margin),
    )


@dataclass(frozen=True)
class LongerTraining:
    """The longer-training control at one size (see `longer_training`).

    `change`: the from-scratch network with twice the steps against its run in the experiment;
    `against`: the pretrained method against the strongest baseline, picked per seed on
    validation among the baselines' runs and the longer run; `picked`: the baseline picked on
    each seed (its name in sentences).
    """

    change: Effect
    against: Effect
    picked: tuple[str, ...]


def longer_training(
    setup: Setup,
    budget: Budget,
    frame: pd.DataFrame,
    size: int,
    seeds: Sequence[int],
    pretrained: str = "fine_tune",
) -> LongerTraining:
    """The from-scratch network at `size` retrained with twice `budget.scratch_steps` at the
    learning rate its first seed chose, on the same training sets and seeds, and the `pretrained`
    method of `frame` against the strongest baseline (see `LongerTraining`).

    On each seed the strongest baseline is the run with the highest validation accuracy among
    the baselines of `frame` at `size` and the longer run; a tie goes to the longer run, then to
    the from-scratch run (the test set plays no part in the choice).
    """
    part = frame[frame.per_class == size]
    before = part[part.method == "scratch"].set_index("seed")
    chosen = float(before.loc[seeds[0], "setting"])
    longer = replace(budget, scratch_steps=2 * budget.scratch_steps, scratch_lrs=(chosen,))
    again = data_efficiency(
        transfer_methods(setup, longer, ("scratch",)), setup.task.pool_labels, [size],
        list(seeds), log=None,
    ).set_index("seed")  # fmt: skip
    ours = part[part.method == pretrained].set_index("seed")
    steps = (
        f"LeNet-5 from scratch with {longer.scratch_steps} steps",
        f"with {budget.scratch_steps} steps",
    )
    change = effect_from_frame(_paired(again, before, seeds), "a", "b", names=steps)
    candidates = {steps[0]: again}  # in the order ties are broken
    for method in ("scratch", *[m for m in BASELINES if m != "scratch"]):
        if method in set(part.method):
            runs = part[part.method == method].set_index("seed")
            name = METHOD_NAMES[method]
            candidates[
                f"{name} with {budget.scratch_steps} steps" if method == "scratch" else name
            ] = runs
    picked = tuple(_strongest_on(candidates, s) for s in seeds)
    strongest = _paired(ours, _picked_runs(candidates, picked, seeds), seeds)
    against = effect_from_frame(
        strongest, "a", "b", names=(METHOD_NAMES[pretrained], "the strongest baseline")
    )
    return LongerTraining(change, against, picked)


def _strongest_on(candidates: dict[str, pd.DataFrame], seed: int) -> str:
    """The candidate with the highest validation accuracy on `seed`; a tie goes to the first."""
    scores = {name: float(runs.loc[seed, "valid_accuracy"]) for name, runs in candidates.items()}
    return max(scores, key=scores.__getitem__)


def _picked_runs(
    candidates: dict[str, pd.DataFrame], picked: Sequence[str], seeds: Sequence[int]
) -> pd.DataFrame:
    """The test accuracy of the run picked on each seed, indexed by seed."""
    import pandas as pd

    return pd.DataFrame(
        {
            "test_accuracy": [
                float(candidates[k].loc[s, "test_accuracy"])
                for k, s in zip(picked, seeds, strict=True)
            ]
        },
        index=pd.Index(list(seeds), name="seed"),
    )


def _paired(a: pd.DataFrame, b: pd.DataFrame, seeds: Sequence[int]) -> pd.DataFrame:
    """The test accuracies of runs `a` and `b` on `seeds`, as a tidy frame of methods "a", "b"."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"seed": s, "method": name, "test_accuracy": runs.loc[s, "test_accuracy"]}
            for s in seeds
            for name, runs in (("a", a), ("b", b))
        ]
    )
