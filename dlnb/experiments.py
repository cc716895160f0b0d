"""The experiments of the transfer-learning lessons: data efficiency, gains over baselines, a leak.

A method is a function `run(train_indices, seed) -> dict` that trains on those rows of a training
set and returns its metrics. `data_efficiency` runs every method on nested, class-balanced
subsets of the training set (`per_class_subset`) for several seeds, one tidy row per run;
`summarise` and `plot_data_efficiency` read the curve off that frame, and `best_effects` the paired
effect (with its 95 % interval over seeds, `dlnb.claims`) of the best of some methods over the best
of others, each picked on the validation set. `selection_leak` measures a data-leakage trap and
`leak_summary` says what it shows.

    frame = data_efficiency({"tf-idf": tfidf, "fine-tuned": tuned}, train_labels, [4, 16, None], [0, 1])
    plot_data_efficiency(frame, "accuracy", chance=0.5)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dlnb.claims import Effect, paired_effect
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


def best_effects(
    frame: pd.DataFrame,
    ours: Sequence[str],
    baselines: Sequence[str],
    metric: str = "test_accuracy",
    select_by: str = "valid_accuracy",
    names: Mapping[str, str] | None = None,
) -> dict[int, Effect]:
    """Per size (`per_class`): the paired effect over seeds of the best of `ours` over the best of
    `baselines` on `metric`, each best picked by its mean `select_by` over seeds (the validation
    accuracy: picking by the test metric would flatter the winner).

    The effect's `ours`/`baseline` are the methods picked (renamed through `names` if given); its
    interval and verdict come from `dlnb.claims.paired_effect` on the seeds both ran.
    """
    missing = sorted((set(ours) | set(baselines)) - set(frame["method"]))
    if missing:
        raise ValueError(f"The frame has no runs of {missing}.")
    names = names or {}
    scores = frame.pivot_table(index=["per_class", "seed"], columns="method", values=metric)
    chosen = frame.groupby(["per_class", "method"])[select_by].mean().unstack()
    effects = {}
    for size, mean in chosen.iterrows():
        mine, theirs = mean[list(ours)].idxmax(), mean[list(baselines)].idxmax()
        both = scores.loc[size, [mine, theirs]].dropna()
        effects[int(size)] = paired_effect(
            both[mine].to_numpy(),
            both[theirs].to_numpy(),
            names=(names.get(mine, mine), names.get(theirs, theirs)),
            metric=metric.replace("_", " "),
        )
    return effects


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


def leak_summary(leak: pd.DataFrame, chance: float = 0.5) -> str:
    """What `selection_leak`'s runs show, as Markdown: both pipelines' mean test accuracy against
    chance, and the paired effect of the leak over the draws."""
    effect = paired_effect(
        leak["leaky"].to_numpy(), leak["honest"].to_numpy(), names=("leaky", "honest")
    )
    if effect.verdict == "better":
        finding = (
            f"the leaky pipeline scores {effect.ours_mean:.3f} on average (never below "
            f"{leak.leaky.min():.3f}) and the honest one {effect.baseline_mean:.3f}, where chance "
            f"is {chance:g}: the leak adds {effect.interval()}. Nothing was learned; the leaky "
            "score measures only that the test labels took part in choosing the features."
        )
    else:
        finding = (
            f"the leak did not show: leaky {effect.ours_mean:.3f}, honest "
            f"{effect.baseline_mean:.3f}, chance {chance:g} ({effect.interval()})."
        )
    return (
        f"On {len(leak)} draws of noise, {finding} The same goes for any fitted preprocessing "
        "(scaling statistics, PCA, class re-balancing, a setting tuned on test results): fit it on "
        "the training rows, apply it everywhere."
    )
