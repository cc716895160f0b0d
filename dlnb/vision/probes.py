"""What transfers: linear probes on the features of each layer of a network, pretrained or not.

A linear probe (a logistic regression on frozen features, its `C` picked on the validation set) is
cheap, so it can be run on many seeds. `layer_probes` probes the same target task with features
from several places: raw pixels, LeNet-5 cut after its convolutions or either hidden dense layer
(`dlnb.vision.pretrain.LENET_CUTS`) with pretrained or random weights, and any other network
(an ImageNet backbone). Comparing them isolates one thing at a time: pretrained against random
weights of the same layers is what pretraining adds; one layer against another is where the
network stops carrying what the target needs.

    frame = layer_probes(setup.task, {"pretrained": source, "random": LeNet5(num_classes=5)},
                         sizes=[1, 5], seeds=range(10), cs=budget.cs)
    plot_layer_probes(frame, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlnb.claims import Effect, effect_from_frame, t_interval
from dlnb.experiments import data_efficiency
from dlnb.models import LeNet5
from dlnb.vision.finetune import extract_features
from dlnb.vision.pretrain import LENET_CUTS, lenet_headed
from dlnb.vision.story import per_class
from dlnb.vision.targets import Task
from dlnb.vision.transfer import fit_logistic

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

#: How LeNet-5's cuts are called in tables and figures, shallow to deep.
CUT_NAMES = {"conv": "convolutions", "fc1": "dense 1", "fc2": "dense 2"}


def lenet_features(
    models: Mapping[str, LeNet5], inputs: torch.Tensor, cuts: Iterable[str] = LENET_CUTS
) -> dict[str, torch.Tensor]:
    """Features of `inputs` (prepared images) at every cut of every LeNet-5 in `models`:
    '<name> <cut>' -> (N, width)."""
    return {
        f"{name} {cut}": extract_features(lenet_headed(model, cut), inputs, device="cpu")
        for name, model in models.items()
        for cut in cuts
    }


def layer_probes(
    task: Task,
    features: Mapping[str, torch.Tensor],
    sizes: Sequence[int],
    seeds: Iterable[int],
    cs: Sequence[float],
) -> pd.DataFrame:
    """A linear probe on each set of `features` (and on raw pixels, as "pixels"), on `per_class`
    examples of each class of the task's pool for each size and seed (the same rows for every
    feature set): a tidy frame as `dlnb.experiments.data_efficiency` returns."""
    sets = {"pixels": task.pixels(), **features}

    def probe(values: torch.Tensor) -> Callable[[np.ndarray, int], dict]:
        return lambda indices, seed: fit_logistic(values, task, task.pool[indices], cs)[1]

    methods = {name: probe(values) for name, values in sets.items()}
    return data_efficiency(methods, task.pool_labels, sizes, list(seeds), log=None)


def layer_table(frame: pd.DataFrame, size: int, metric: str = "test_accuracy") -> pd.DataFrame:
    """Per feature set at `size` examples per class: the mean `metric` over seeds and its t-based
    95 % interval (`low`, `high`), best first."""
    import pandas as pd

    rows = []
    for method, part in frame[frame.per_class == size].groupby("method", sort=False):
        mean, low, high = t_interval(part[metric].to_numpy())
        rows.append(
            {"features": method, "mean": mean, "low": low, "high": high, "seeds": len(part)}
        )
    return pd.DataFrame(rows).set_index("features").sort_values("mean", ascending=False)


def plot_layer_probes(
    frame: pd.DataFrame,
    size: int,
    weights: Sequence[str] = ("pretrained", "random"),
    others: Sequence[str] = ("pixels",),
    ax: Axes | None = None,
) -> tuple[Figure | SubFigure, Axes]:
    """Probe accuracy at each LeNet-5 cut (x), one line per kind of `weights` (mean and 95 %
    interval over seeds), and a dashed level with its band for each feature set in `others`.

    The intervals are those of each mean on its own: they include how much the draws of labelled
    examples differ, which paired comparisons (`layer_effects`) cancel."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    table = layer_table(frame, size)
    positions = np.arange(len(CUT_NAMES))
    for i, name in enumerate(weights):
        rows = table.loc[[f"{name} {cut}" for cut in CUT_NAMES]]
        errors = [rows["mean"] - rows["low"], rows["high"] - rows["mean"]]
        ax.errorbar(positions + 0.05 * i, rows["mean"], yerr=errors, marker="o", capsize=4,
                    label=f"LeNet-5, {name} weights")  # fmt: skip
    for j, name in enumerate(others):
        row = table.loc[name]
        color = f"C{len(weights) + j}"
        ax.axhline(row["mean"], color=color, linestyle="--", label=name)
        ax.axhspan(row["low"], row["high"], color=color, alpha=0.12)
    ax.set_xticks(positions, [f"{CUT_NAMES[c]}\n({LENET_CUTS[c][1]} features)" for c in CUT_NAMES])
    ax.set(xlabel="layer the probe reads", ylabel="test accuracy",
           title=f"Linear probes, {per_class(size)}")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax.figure, ax


def layer_effects(
    frame: pd.DataFrame,
    size: int,
    pairs: Mapping[str, tuple[str, str]],
    names: Mapping[str, str] | None = None,
) -> dict[str, Effect]:
    """The paired effect over seeds at `size` of each pair: claim name -> (ours, baseline), both
    feature-set names of `frame`; `names` renames them in sentences."""
    names = names or {}
    part = frame[frame.per_class == size]
    return {
        claim: effect_from_frame(
            part, ours, baseline, names=(names.get(ours, ours), names.get(baseline, baseline))
        )
        for claim, (ours, baseline) in pairs.items()
    }
