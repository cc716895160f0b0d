"""The experiments of the transfer-learning lessons: data efficiency, gains over baselines, a leak.

A method is a function `run(train_indices, seed) -> dict` that trains on those rows of a training
set and returns its metrics. `data_efficiency` runs every method on nested, class-balanced
subsets of the training set (`per_class_subset`) for several seeds, one tidy row per run;
`summarise` and `plot_data_efficiency` read the curve off that frame, and `best_gain` the margin of
the best of some methods over the best of others. `selection_leak` measures a data-leakage trap.

    frame = data_efficiency({"tf-idf": tfidf, "fine-tuned": tuned}, train_labels, [4, 16, None], [0, 1])
    plot_data_efficiency(frame, "accuracy", chance=0.5)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dlnb.data.loaders import per_class_subset
from dlnb.runtime import is_headless
from dlnb.runtime import progress as progress_bar

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

Method = Callable[[np.ndarray, int], Mapping[str, Any]]


def _numbers(result: Mapping[str, Any]) -> dict[str, float | int]:
    """The plain numbers of a method's result (models, histories and other objects left out)."""
    return {
        key: value.item() if isinstance(value, np.generic) else value
        for key, value in result.items()
        if isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
    }


def data_efficiency(
    methods: Mapping[str, Method],
    labels: Sequence[int] | np.ndarray,
    sizes: Sequence[int | None],
    seeds: Sequence[int],
    *,
    keep: Sequence[str] = (),
    log: Callable[[str], None] | None = print,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every method on `per_class` examples of each class (None: all of them) for every seed.

    `labels` are the training set's classes; for one seed the subsets are nested (the 5-per-class
    rows are inside the 20). One row per run: method, per_class (with None, the mean per class),
    n_train, seed, seconds (the run's wall-clock time, unless the method reports its own) and
    every number the method returns. Other entries of a result (models) are dropped, except those
    named in `keep` (e.g. `keep=("history",)`), kept as they are in a column of their own.
    `progress=True` adds a bar over the runs in a live notebook (headless, `log` lines suffice).
    """
    import pandas as pd

    labels = np.asarray(labels)
    n_classes = len(np.unique(labels))
    rows = []
    runs = [(size, seed, name) for size in sizes for seed in seeds for name in methods]
    live = progress and not is_headless()
    for size, seed, name in progress_bar(runs, "runs", enabled=live):
        indices = per_class_subset(labels, size, seed)  # the same subset for every method
        start = time.perf_counter()
        result = methods[name](indices, seed)
        metrics = {"seconds": time.perf_counter() - start, **_numbers(result)}
        rows.append(
            {
                "method": name,
                "per_class": size or len(indices) // n_classes,
                "n_train": len(indices),
                "seed": seed,
                **metrics,
                **{key: result.get(key) for key in keep},
            }
        )
        if log:
            shown = "  ".join(f"{k} {v:.3g}" for k, v in metrics.items())
            log(f"{name:>12}  {rows[-1]['per_class']:>5}/class  seed {seed}  {shown}")
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean and standard deviation over seeds of `metric`: a row per size, (mean|std, method) columns."""
    stats = frame.groupby(["per_class", "method"])[metric].agg(["mean", "std"])
    return stats.unstack("method").sort_index()


def plot_data_efficiency(
    frame: pd.DataFrame,
    metric: str = "accuracy",
    ax: Axes | None = None,
    *,
    chance: float | None = None,
    logy: bool = False,
    title: str | None = None,
) -> tuple[Figure | SubFigure, Axes]:
    """`metric` against labelled examples per class, one line per method (mean, min-max band)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    sizes = sorted(frame["per_class"].unique())
    for name, part in frame.groupby("method", sort=False):
        stats = part.groupby("per_class")[metric].agg(["mean", "min", "max"]).reindex(sizes)
        ax.plot(stats.index, stats["mean"], marker="o", label=name)
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.15)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax.figure, ax


def best_gain(
    frame: pd.DataFrame,
    ours: Sequence[str],
    baselines: Sequence[str],
    metric: str = "test_accuracy",
) -> pd.DataFrame:
    """Per size: the best of `ours` minus the best of `baselines`, each judged by its mean over seeds.

    One row per `per_class`: the two methods picked (`ours`, `baseline`), their means, `gain`
    (the difference of the means), `worst_seed_gain` (the smallest difference between those two
    methods on any one seed) and `seeds` (how many seeds both ran).
    """
    import pandas as pd

    missing = sorted((set(ours) | set(baselines)) - set(frame["method"]))
    if missing:
        raise ValueError(f"The frame has no runs of {missing}.")
    per_seed = frame.pivot_table(index=["per_class", "seed"], columns="method", values=metric)
    means = per_seed.groupby(level="per_class").mean()
    rows = []
    for size, mean in means.iterrows():
        mine, theirs = mean[list(ours)].idxmax(), mean[list(baselines)].idxmax()
        diff = (per_seed.loc[size, mine] - per_seed.loc[size, theirs]).dropna()
        rows.append(
            {
                "per_class": size,
                "ours": mine,
                "ours_mean": mean[mine],
                "baseline": theirs,
                "baseline_mean": mean[theirs],
                "gain": mean[mine] - mean[theirs],
                "worst_seed_gain": diff.min(),
                "seeds": len(diff),
            }
        )
    return pd.DataFrame(rows).set_index("per_class")


def selection_leak(
    n_rows: int = 400,
    n_features: int = 5000,
    keep: int = 50,
    seeds: Sequence[int] = range(10),
) -> pd.DataFrame:
    """Feature selection fitted on every row, test rows included, against selection fitted on the
    training rows only, on pure noise with coin-flip labels: nothing can be learned (chance 0.5).

    For each seed: `n_rows` rows of `n_features` Gaussian noise values, random 0/1 labels, half the
    rows for training and half for testing; the `keep` features most associated with the labels
    (ANOVA F) feed a logistic regression. One row per seed: `leaky` and `honest` test accuracy.
    """
    import pandas as pd
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(n_rows, n_features)), rng.integers(0, 2, n_rows)
        train, test = slice(0, n_rows // 2), slice(n_rows // 2, n_rows)
        with threadpool_limits(1):
            selector = SelectKBest(f_classif, k=keep).fit(x, y)  # WRONG: it sees the test rows
            leaky = LogisticRegression(max_iter=1000).fit(selector.transform(x[train]), y[train])
            leaky_accuracy = leaky.score(selector.transform(x[test]), y[test])
            honest = make_pipeline(
                SelectKBest(f_classif, k=keep), LogisticRegression(max_iter=1000)
            )
            honest_accuracy = honest.fit(x[train], y[train]).score(x[test], y[test])
        rows.append({"seed": seed, "leaky": leaky_accuracy, "honest": honest_accuracy})
    return pd.DataFrame(rows)
