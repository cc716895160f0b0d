"""A bias audit: how a classifier's errors differ between groups of a sensitive attribute.

`group_metrics` gives, per group, the size, base rate, selection rate, accuracy and the
false-positive and false-negative rates; `disparities` the largest gaps between groups;
`plot_group_metrics` a bar chart. When the rates differ, one remedy (post-processing, Hardt et
al., 2016) is a decision threshold per group chosen on validation data so that every group has
the same false-positive rate: `equal_fpr_thresholds` + `apply_thresholds`; `tradeoff` says what
that bought and cost, `small_groups` which groups are too small to trust.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlnb.plots import axes
from dlnb.tabular.figures import NAMES, shared_legend

RATES = ("selection_rate", "accuracy", "fpr", "fnr")


def _check(y_true, y_pred, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true, y_pred, groups = (np.asarray(a) for a in (y_true, y_pred, groups))
    if not len(y_true) == len(y_pred) == len(groups):
        raise ValueError(
            f"y_true, y_pred and groups must have the same length, got "
            f"{len(y_true)}, {len(y_pred)} and {len(groups)}."
        )
    if not set(np.unique(y_true)) <= {0, 1} or not set(np.unique(y_pred)) <= {0, 1}:
        raise ValueError(
            "The bias audit works on binary labels and predictions coded 0/1; "
            "threshold scores first (y_pred = scores >= 0.5)."
        )
    return y_true.astype(int), y_pred.astype(int), groups


def _rates(y: np.ndarray, p: np.ndarray) -> dict:
    neg, pos = y == 0, y == 1
    return {
        "n": len(y),
        "base_rate": y.mean() if len(y) else np.nan,
        "selection_rate": p.mean() if len(y) else np.nan,
        "accuracy": (p == y).mean() if len(y) else np.nan,
        "fpr": p[neg].mean() if neg.any() else np.nan,  # negatives wrongly flagged positive
        "fnr": 1 - p[pos].mean() if pos.any() else np.nan,  # positives missed
    }


def group_metrics(y_true, y_pred, groups) -> pd.DataFrame:
    """Per-group size, share, base rate, selection rate, accuracy, FPR and FNR, plus an 'all' row."""
    y_true, y_pred, groups = _check(y_true, y_pred, groups)
    rows = {str(g): _rates(y_true[groups == g], y_pred[groups == g]) for g in np.unique(groups)}
    rows["all"] = _rates(y_true, y_pred)
    out = pd.DataFrame(rows).T
    out.insert(1, "share", out["n"] / len(y_true))
    out.index.name = "group"
    return out.astype({"n": int})


def disparities(metrics: pd.DataFrame) -> dict[str, float]:
    """Largest between-group gap of each rate, and the ratio of the lowest to highest selection rate."""
    groups = metrics.drop(index="all", errors="ignore")
    gaps = {f"{r}_gap": float(groups[r].max() - groups[r].min()) for r in RATES}
    top = groups["selection_rate"].max()
    gaps["selection_ratio"] = (
        float(groups["selection_rate"].min() / top) if top > 0 else float("nan")
    )
    return gaps


def small_groups(metrics: pd.DataFrame, min_count: int = 50) -> dict[str, str]:
    """Groups whose FPR or FNR rests on fewer than `min_count` true negatives or positives: their
    rates (and any threshold fitted to them) are too noisy to trust. Maps group -> the counts."""
    out = {}
    for g, row in metrics.drop(index="all", errors="ignore").iterrows():
        pos = int(round(row["n"] * row["base_rate"]))
        neg = int(row["n"]) - pos
        if min(pos, neg) < min_count:
            out[str(g)] = f"{neg} negatives, {pos} positives"
    return out


def tradeoff(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """What per-group thresholds bought and cost: the FPR and FNR gaps between groups, and the
    overall accuracy, FPR and FNR, with one threshold (`before`) and per-group ones (`after`)."""
    rows = {}
    for label, m in (("one threshold (0.5)", before), ("per-group thresholds", after)):
        gaps = disparities(m)
        rows[label] = {
            "fpr_gap": gaps["fpr_gap"],
            "fnr_gap": gaps["fnr_gap"],
            **{r: float(m.loc["all", r]) for r in ("accuracy", "fpr", "fnr")},
        }
    out = pd.DataFrame(rows).T
    out.loc["change"] = out.iloc[1] - out.iloc[0]
    return out


def equal_fpr_thresholds(
    scores, y_true, groups, target_fpr: float | None = None
) -> dict[str, float]:
    """Per-group thresholds on `scores` giving each group the false-positive rate `target_fpr`
    (default: the overall FPR at threshold 0.5). Fit them on validation data, not test data."""
    scores, y_true, groups = (
        np.asarray(scores, float),
        np.asarray(y_true).astype(int),
        np.asarray(groups),
    )
    if target_fpr is None:
        target_fpr = float((scores[y_true == 0] >= 0.5).mean())
    thresholds = {}
    for g in np.unique(groups):
        neg = np.sort(scores[(groups == g) & (y_true == 0)])
        if len(neg) == 0:
            raise ValueError(
                f"Group {g!r} has no negative examples in this data, so its false-"
                "positive rate cannot be set; use more (validation) data."
            )
        k = int(np.floor(target_fpr * len(neg)))  # allow k negatives at or above the threshold
        thresholds[str(g)] = float(np.nextafter(neg[-1], np.inf) if k == 0 else neg[len(neg) - k])
    return thresholds


def apply_thresholds(scores, groups, thresholds: dict[str, float]) -> np.ndarray:
    """0/1 predictions using each row's group threshold."""
    scores, groups = np.asarray(scores, float), np.asarray(groups).astype(str)
    missing = sorted(set(map(str, np.unique(groups))) - set(thresholds))
    if missing:
        raise ValueError(
            f"No threshold for groups {missing}; fit the thresholds on data containing them."
        )
    return (scores >= np.array([thresholds[g] for g in groups])).astype(int)


def plot_group_metrics(metrics: pd.DataFrame, ax=None, title: str = "per-group rates"):
    """Grouped bars of accuracy, selection rate, FPR and FNR for each group."""
    fig, ax = axes(ax, (7, 3.5))
    groups = metrics.drop(index="all", errors="ignore")
    width = 0.8 / len(groups)
    x = np.arange(len(RATES))
    for i, (g, row) in enumerate(groups.iterrows()):
        ax.bar(x + i * width, [row[r] for r in RATES], width, label=f"{g} (n={int(row['n'])})")
    ax.set_xticks(x + width * (len(groups) - 1) / 2, ["selection rate", "accuracy", "FPR", "FNR"])
    ax.set(ylim=(0, 1), ylabel="rate", title=title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig, ax


@dataclass
class Audit:
    """Per-group metrics of one model before and after per-group thresholds."""

    model: str
    attribute: str
    before: pd.DataFrame
    after: pd.DataFrame
    thresholds: dict[str, float]

    def plot(self):
        """Per-group rates before and after equalising false-positive rates, one legend below
        both panels; returns the figure."""
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.9), sharey=True)
        name = NAMES.get(self.model, self.model)
        plot_group_metrics(self.before, a, f"{name} by {self.attribute}: one threshold (0.5)")
        plot_group_metrics(self.after, b, "per-group thresholds with equal FPR (fit on validation)")
        for ax in (a, b):
            ax.get_legend().remove()
        b.set_ylabel("")  # the shared y axis is labelled once
        shared_legend(fig, a)
        return fig
