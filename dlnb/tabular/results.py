"""The results of `dlnb.tabular.comparison.compare`: a DataFrame that summarises and plots itself.

`Results.frame` has one row per (model, seed, training-set size). `summary()` gives mean and
sample standard deviation (ddof=1) over seeds, with their count, `table()` the same as readable
"mean ± std" strings, `report()` one run's classification report, `plot()` the
score against training-set size and the cost against the score, and `describe()` writes what the
numbers say in sentences computed from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dlnb import claims
from dlnb.plots import axes
from dlnb.tabular.fairness import Audit, apply_thresholds, equal_fpr_thresholds, group_metrics
from dlnb.tabular.figures import COLORS as COLORS  # re-exported: dlnb.tabular names it
from dlnb.tabular.figures import (
    METRIC_LABELS,
    draw_cost,
    draw_learning_curve,
    legend_outside,
    model_name,
    shared_legend,
)
from dlnb.tabular.figures import NAMES as NAMES  # re-exported
from dlnb.train.report import Report, report_from_probs

if TYPE_CHECKING:
    from dlnb.tabular.tables import Table

__all__ = ["DEEP", "Results", "plot_learning_curves", "scores"]

DEEP = ("mlp", "emb_mlp", "ft_transformer")
METRICS = ("accuracy", "roc_auc", "rmse")
COSTS = ("train_seconds", "tune_seconds", "infer_ms_per_1k", "params", "trees", "leaves")


def scores(task: str, y: np.ndarray, out: np.ndarray, n_classes: int) -> dict:
    """Test metrics from class probabilities (classification) or predictions (regression)."""
    from sklearn.metrics import log_loss, roc_auc_score

    if task == "regression":
        return {"rmse": float(np.sqrt(np.mean((out.reshape(-1) - y) ** 2)))}
    labels = np.arange(n_classes)
    result = {
        "accuracy": float(np.mean(out.argmax(1) == y)),
        "log_loss": float(log_loss(y, np.clip(out, 1e-7, 1), labels=labels)),
    }
    try:
        result["roc_auc"] = float(
            roc_auc_score(y, out[:, 1])
            if n_classes == 2
            else roc_auc_score(y, out, multi_class="ovr", labels=labels)
        )
    except ValueError:  # a class absent from y: AUC is undefined
        result["roc_auc"] = math.nan
    return result


@dataclass
class Results:
    """Per-run results (`frame`), test/validation predictions per run, the table they came from,
    and the Optuna study of every tuned run by `(model, seed, n_train)` (plot one with
    `dlnb.lifecycle.plot_study_history`)."""

    frame: pd.DataFrame
    predictions: dict = field(default_factory=dict, repr=False)
    source: Table | None = field(default=None, repr=False)
    studies: dict = field(default_factory=dict, repr=False)

    @property
    def task(self) -> str:
        """The task of the table: binary, multiclass or regression."""
        return str(self.frame["task"].iloc[0])

    @property
    def metric(self) -> str:
        """The headline metric: accuracy for classification, RMSE for regression."""
        return "rmse" if (self.frame["task"] == "regression").all() else "accuracy"

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger headline metric is better."""
        return self.metric != "rmse"

    def name(self, model: str) -> str:
        """The readable name of `model` here (the baseline: majority class or mean predictor)."""
        return model_name(model, self.task)

    def summary(self) -> pd.DataFrame:
        """Mean and sample std (ddof=1; NaN for one seed) over the `seeds` of every metric and cost,
        per model and training-set size."""
        cols = [c for c in (*METRICS, *COSTS, "epochs") if c in self.frame]
        g = self.frame.groupby(["model", "n_train"], sort=False)[cols]
        out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std"))
        out["seeds"] = g.size()
        return out.reset_index()

    def largest(self) -> pd.DataFrame:
        """`summary()` at the largest training-set size, best model first."""
        s = self.summary()
        s = s[s["n_train"] == s["n_train"].max()]
        return s.sort_values(f"{self.metric}_mean", ascending=not self.higher_is_better)

    def per_seed(self) -> pd.DataFrame:
        """The headline metric at the largest training size: one row per seed, one column per model."""
        f = self.frame[self.frame["n_train"] == self.frame["n_train"].max()]
        return f.pivot(index="seed", columns="model", values=self.metric)

    def per_seed_table(self) -> pd.DataFrame:
        """`per_seed()` with readable model names, the baseline last, and a mean row."""
        per = self.per_seed()
        order = [m for m in per.columns if m != "majority"] + ["majority"] * ("majority" in per)
        per = per[order]
        per.loc["mean"] = per.mean()
        return per.rename(columns=self.name).rename_axis(index="seed", columns=None)

    def table(self) -> pd.DataFrame:
        """The largest-size summary as readable text: metrics as "mean ± sample std" over the
        number of `seeds`, costs, size."""
        rows = []
        for _, r in self.largest().iterrows():
            row = {"model": self.name(r["model"]), "seeds": int(r["seeds"])}
            for m in METRICS:
                if f"{m}_mean" in r and not np.isnan(r[f"{m}_mean"]):
                    row[m] = f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}"
            row["train s"] = f"{r['train_seconds_mean']:.2f}"
            row["tuning s"] = f"{r['tune_seconds_mean']:.1f}"
            row["predict ms / 1k rows"] = f"{r['infer_ms_per_1k_mean']:.2f}"
            row["size"] = (
                f"{r['trees_mean']:.0f} trees, {r['leaves_mean']:.0f} leaves"
                if r["model"] == "xgboost"
                else f"{r['params_mean']:,.0f} parameters"
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("model")

    def __repr__(self) -> str:
        models = ", ".join(self.name(m) for m in self.frame["model"].unique())
        return (
            f"Results of {self.frame['dataset'].iloc[0]}: {models}; "
            f"{self.frame['seed'].nunique()} seeds; `.table()` summarises them."
        )

    def _repr_html_(self) -> str:
        return self.table().to_html()

    def models_run(self, among: tuple[str, ...] = DEEP) -> list[str]:
        """The models of `among` this comparison ran, in that order."""
        present = set(self.frame["model"])
        return [m for m in among if m in present]

    def best(self, among: tuple[str, ...] = DEEP) -> str:
        """The model of `among` with the best mean headline metric at the largest size."""
        ranked = [m for m in self.largest()["model"] if m in among]
        if not ranked:
            raise ValueError(f"None of {among} ran here; models: {sorted(set(self.frame.model))}.")
        return ranked[0]

    def effect(
        self, ours: str, baseline: str, *, band: float = 0.0, error: bool = False
    ) -> claims.Effect:
        """The paired effect (over seeds, largest size) of `ours` against `baseline` on the
        headline metric, or with `error=True` on the error (RMSE, or 1 - accuracy), so that a
        negative difference is always an improvement whatever the task."""
        both = self.per_seed()[[ours, baseline]].dropna()
        metric, higher = f"test {METRIC_LABELS.get(self.metric)}", self.higher_is_better
        if error and higher:
            both, metric, higher = 1 - both, "test error rate", False
        return claims.paired_effect(
            both[ours].to_numpy(),
            both[baseline].to_numpy(),
            names=(self.name(ours), self.name(baseline)),
            metric=metric,
            higher_is_better=higher,
            band=band,
        )

    def caps(self, cap: int, among: tuple[str, ...] = DEEP) -> list[claims.CapCheck]:
        """One epoch-cap check per neural model of `among` (at the largest size)."""
        f = self.frame[self.frame["n_train"] == self.frame["n_train"].max()]
        return [
            claims.capped(self.name(m), f.loc[f["model"] == m, "epochs"].tolist(), cap)
            for m in self.models_run(among)
        ]

    def learned(self, model: str, margin: float) -> claims.BaselineCheck:
        """Whether `model` beat the baseline (majority class, mean predictor) by `margin` in the
        headline metric over seeds, the worse end of its 95 % interval counting."""
        per = self.per_seed()
        return claims.learned(
            self.name(model),
            per[model].to_numpy(),
            float(per["majority"].mean()),
            margin=margin,
            reference_name=f"the {self.name('majority')}",
            higher_is_better=self.higher_is_better,
        )

    def crossover(self, model: str, reference: str = "xgboost") -> int | None:
        """The smallest training-set size from which `model` beats `reference` on the mean metric
        at every larger size too (None if it never does)."""
        s = self.summary().pivot(index="n_train", columns="model", values=f"{self.metric}_mean")
        if model not in s or reference not in s:
            return None
        diff = (s[model] - s[reference]) * (1 if self.higher_is_better else -1)
        ahead = (diff > 0).to_numpy()
        for i in range(len(ahead)):
            if ahead[i:].all():
                return int(s.index[i])
        return None

    def plot_learning_curve(self, ax=None, legend: bool = True):
        """Mean test metric (± std over seeds) against training-set size, one line per model;
        the legend (if any) right of the axes."""
        fig, ax = axes(ax, (6, 4))
        title = f"{self.frame['dataset'].iloc[0]}: score vs training-set size"
        draw_learning_curve(
            ax, self.summary(), self.metric, self.higher_is_better, self.name, title
        )
        if legend:
            legend_outside(ax)
        return fig, ax

    def plot_cost(self, ax=None):
        """Tuning wall-clock (all trials) against the test metric at the largest training size."""
        fig, ax = axes(ax, (6, 4))
        draw_cost(ax, self.largest(), self.metric, self.higher_is_better, self.name)
        legend_outside(ax)
        return fig, ax

    def plot(self):
        """The cost against the score, beside the learning curve when there are >= 3 training
        sizes (a curve through one or two points says nothing); returns the figure."""
        import matplotlib.pyplot as plt

        if self.frame["n_train"].nunique() < 3:
            fig, ax = plt.subplots(figsize=(7.5, 4))
            draw_cost(ax, self.largest(), self.metric, self.higher_is_better, self.name)
            legend_outside(ax)
            fig.tight_layout()
            return fig
        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.4))
        self.plot_learning_curve(a, legend=False)
        draw_cost(b, self.largest(), self.metric, self.higher_is_better, self.name)
        shared_legend(fig, a)
        return fig

    def audit(
        self,
        model: str,
        attribute: str | None = None,
        seed: int | None = None,
        n_train: int | None = None,
    ) -> Audit:
        """Bias audit of one run's test predictions on a sensitive attribute, before and after
        per-group thresholds (fitted on the validation split) that equalise false-positive rates."""
        table = self.source
        if table is None or table.task != "binary":
            raise ValueError("The bias audit needs the results of a binary classification table.")
        attribute = attribute or (table.sensitive[0] if table.sensitive else None)
        if attribute is None or attribute not in table.X.columns:
            raise ValueError(
                f"Name a sensitive column to audit (the table has {list(table.X.columns)})."
            )
        run = self._run(model, seed, n_train)
        groups = table.X[attribute].astype(str).to_numpy()
        test, valid = run["test_rows"], run["valid_rows"]
        scores = run["test"][:, 1]
        before = group_metrics(table.y[test], (scores >= 0.5).astype(int), groups[test])
        thresholds = equal_fpr_thresholds(run["valid"][:, 1], table.y[valid], groups[valid])
        after = group_metrics(
            table.y[test], apply_thresholds(scores, groups[test], thresholds), groups[test]
        )
        return Audit(model, attribute, before, after, thresholds)

    def _run(self, model: str, seed: int | None, n_train: int | None) -> dict:
        """The stored predictions of one run (default: the first seed, the largest size)."""
        seed = int(self.frame["seed"].min() if seed is None else seed)
        n_train = int(self.frame["n_train"].max() if n_train is None else n_train)
        run = self.predictions.get((model, seed, n_train))
        if run is None:
            raise KeyError(
                f"No run {(model, seed, n_train)} (model, seed, n_train); runs: "
                f"{sorted(self.predictions)}."
            )
        return run

    def report(self, model: str, seed: int | None = None, n_train: int | None = None) -> Report:
        """The classification report (scikit-learn) of one run's test predictions."""
        table = self.source
        if table is None or table.task == "regression":
            raise ValueError("A classification report needs the results of a classification table.")
        run = self._run(model, seed, n_train)
        return report_from_probs(table.y[run["test_rows"]], run["test"], table.classes or None)

    def describe(self, timing: str = "") -> str:
        """What this run's numbers say about "boosting wins on moderate tables", in sentences:
        the best model, XGBoost against the best deep model (a paired effect over seeds with its
        interval), the cost of tuning (`timing` says where it was timed) and, with several
        training sizes, which deep models the mean curves put ahead of XGBoost at which size."""
        m = self.metric
        top = self.largest()
        top = top[top["model"] != "majority"].set_index("model")
        if top.empty:
            return "No model other than the baseline was run."
        best = str(top.index[0])
        parts = [
            f"With {int(self.frame['n_train'].max()):,} training rows, the best mean test "
            f"{METRIC_LABELS.get(m)} came from {self.name(best)} ({top.loc[best, f'{m}_mean']:.4f} "
            f"± {top.loc[best, f'{m}_std']:.4f}, sample std over {int(top.loc[best, 'seeds'])} "
            "seeds)."
        ]
        deep = self.models_run()
        if "xgboost" in top.index and deep:
            parts.append(self.effect("xgboost", self.best(tuple(deep))).sentence())
            ratio = top.loc[deep, "tune_seconds_mean"].min() / max(
                top.loc["xgboost", "tune_seconds_mean"], 1e-9
            )
            parts.append(
                f"Tuning XGBoost took {top.loc['xgboost', 'tune_seconds_mean']:.1f} s; the "
                f"cheapest deep model took {ratio:.1f}x as long{f' ({timing})' if timing else ''}."
            )
            if self.frame["n_train"].nunique() > 1:
                parts.append(self._curves(deep))
        return " ".join(parts)

    def _curves(self, deep: list[str]) -> str:
        """Which deep models the mean curves put ahead of XGBoost at each training size, and
        whether XGBoost caught up by the largest size (a reading of the figure, not a claim)."""
        s = self.summary().pivot(index="n_train", columns="model", values=f"{self.metric}_mean")
        sign = 1 if self.higher_is_better else -1
        ahead = {
            int(n): [self.name(m) for m in deep if sign * (s.loc[n, m] - s.loc[n, "xgboost"]) > 0]
            for n in s.index
        }
        intro = "On the mean curves (the figure: means over seeds, no intervals)"
        if not any(ahead.values()):
            return f"{intro} no deep model was ahead of XGBoost at any training size."
        listed = "; ".join(f"at {n:,} rows {', '.join(v)}" for n, v in ahead.items() if v)
        text = f"{intro} deep models ahead of XGBoost: {listed}."
        sizes = sorted(ahead)
        if ahead[sizes[-1]]:
            return f"{text} At the largest size they are still ahead."
        caught = next(n for n in reversed(sizes) if ahead[n])
        after = sizes[sizes.index(caught) + 1]
        return (
            f"{text} From {after:,} training rows on no deep model was ahead: XGBoost caught up "
            "as the training rows grew."
        )


def plot_learning_curves(results: dict[str, Results], width: float = 6.0):
    """One learning-curve panel per comparison (titled by its key), a shared y axis and one
    legend below the panels; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, len(results), figsize=(width * len(results), 4.4), sharey=True)
    axs = np.atleast_1d(axs)
    for ax, (label, res) in zip(axs, results.items(), strict=True):
        draw_learning_curve(ax, res.summary(), res.metric, res.higher_is_better, res.name, label)
    for ax in axs[1:]:  # the shared y axis is labelled once
        ax.set_ylabel("")
    shared_legend(fig, axs[0])
    return fig
