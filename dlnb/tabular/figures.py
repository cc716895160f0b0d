"""Figures of a tabular comparison: score against training-set size, cost against score.

Every function takes summary frames (`Results.summary()` rows: `model`, `n_train`, `<metric>_mean`,
`<metric>_std`, `tune_seconds_mean`, ...), draws one model in one colour everywhere, and keeps
its legend outside the plotted data.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

NAMES = {
    "majority": "majority class",
    "xgboost": "XGBoost",
    "mlp": "MLP (one-hot)",
    "emb_mlp": "MLP + embeddings",
    "ft_transformer": "FT-Transformer",
}
#: One colour per model, the same in every panel of every figure.
COLORS = {
    "majority": "grey",
    "xgboost": "tab:green",
    "mlp": "tab:blue",
    "emb_mlp": "tab:orange",
    "ft_transformer": "tab:purple",
}
METRIC_LABELS = {"accuracy": "accuracy", "rmse": "RMSE", "roc_auc": "ROC AUC"}


def model_name(model: str, task: str = "binary") -> str:
    """A model's readable name; the baseline is the mean predictor in regression."""
    if model == "majority" and task == "regression":
        return "mean predictor"
    return NAMES.get(model, model)


def axis_label(metric: str, higher_is_better: bool) -> str:
    """'test RMSE (lower is better)'."""
    better = "higher" if higher_is_better else "lower"
    return f"test {METRIC_LABELS.get(metric, metric)} ({better} is better)"


def legend_outside(ax, **options) -> None:
    """The axes' legend to the right of the plotting area, where it covers no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, **options)


def draw_learning_curve(
    ax,
    summary: pd.DataFrame,
    metric: str,
    higher_is_better: bool,
    name: Callable[[str], str],
    title: str,
) -> None:
    """Mean test metric (error bars: sample std over seeds) against training rows, one line per
    model (`name(model)` in the legend); no legend is drawn, the caller places one."""
    for model, g in summary.groupby("model", sort=False):
        style = {"linestyle": "--"} if model == "majority" else {"marker": "o"}
        ax.errorbar(
            g["n_train"],
            g[f"{metric}_mean"],
            yerr=g[f"{metric}_std"],
            label=name(str(model)),
            color=COLORS.get(str(model)),
            capsize=3,
            **style,
        )
    if summary["n_train"].nunique() > 1:
        ax.set_xscale("log")
    ax.set(xlabel="training rows (log scale)", ylabel=axis_label(metric, higher_is_better))
    ax.set_title(title)


def draw_cost(
    ax, largest: pd.DataFrame, metric: str, higher_is_better: bool, name: Callable[[str], str]
) -> None:
    """Tuning wall-clock (all trials, log scale) against the test metric, one point per model
    (error bars: sample std over seeds); the baseline costs nothing and is left out."""
    from matplotlib.ticker import NullFormatter

    for _, r in largest.iterrows():
        if r["model"] == "majority":
            continue
        ax.errorbar(
            r["tune_seconds_mean"],
            r[f"{metric}_mean"],
            xerr=r["tune_seconds_std"],
            yerr=r[f"{metric}_std"],
            marker="o",
            capsize=3,
            color=COLORS.get(r["model"]),
            label=name(r["model"]),
        )
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log axis overlap
    ax.set(
        xlabel="tuning wall-clock, all trials (s, log scale)",
        ylabel=axis_label(metric, higher_is_better),
        title="cost vs score",
    )


def shared_legend(fig, ax) -> None:
    """One legend for every panel of `fig` (the handles of `ax`), below the panels."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=len(labels),
        fontsize=9,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
