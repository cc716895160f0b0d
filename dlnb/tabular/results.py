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

from dlnb.plots import axes
from dlnb.train.report import Report, report_from_probs

if TYPE_CHECKING:
    from dlnb.tabular.tables import Table

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
class Audit:
    """Per-group metrics of one model before and after per-group thresholds."""

    model: str
    attribute: str
    before: pd.DataFrame
    after: pd.DataFrame
    thresholds: dict[str, float]

    def plot(self):
        """Per-group rates before and after equalising false-positive rates; returns the figure."""
        import matplotlib.pyplot as plt

        from dlnb.tabular.fairness import plot_group_metrics

        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.5), sharey=True)
        name = NAMES.get(self.model, self.model)
        plot_group_metrics(self.before, a, f"{name} by {self.attribute}: one threshold (0.5)")
        plot_group_metrics(self.after, b, "per-group thresholds with equal FPR (fit on validation)")
        fig.tight_layout()
        return fig


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
    def metric(self) -> str:
        """The headline metric: accuracy for classification, RMSE for regression."""
        return "rmse" if (self.frame["task"] == "regression").all() else "accuracy"

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger headline metric is better."""
        return self.metric != "rmse"

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

    def table(self) -> pd.DataFrame:
        """The largest-size summary as readable text: metrics as "mean ± sample std" over the
        number of `seeds`, costs, size."""
        rows = []
        for _, r in self.largest().iterrows():
            row = {"model": NAMES.get(r["model"], r["model"]), "seeds": int(r["seeds"])}
            for m in METRICS:
                if f"{m}_mean" in r and not np.isnan(r[f"{m}_mean"]):
                    row[m] = f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}"
            row["train s"] = f"{r['train_seconds_mean']:.2f}"
            row["tuning s"] = f"{r['tune_seconds_mean']:.1f}"
            row["ms / 1k rows"] = f"{r['infer_ms_per_1k_mean']:.2f}"
            row["size"] = (
                f"{r['trees_mean']:.0f} trees, {r['leaves_mean']:.0f} leaves"
                if r["model"] == "xgboost"
                else f"{r['params_mean']:,.0f} parameters"
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("model")

    def _repr_html_(self) -> str:
        return self.table().to_html()

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

    def plot_learning_curve(self, ax=None):
        """Mean test metric (± std over seeds) against training-set size, one line per model."""
        fig, ax = axes(ax, (6, 4))
        s = self.summary()
        for model, g in s.groupby("model", sort=False):
            style = {"linestyle": "--"} if model == "majority" else {"marker": "o"}
            ax.errorbar(
                g["n_train"],
                g[f"{self.metric}_mean"],
                yerr=g[f"{self.metric}_std"],
                label=NAMES.get(model, model),
                color=COLORS.get(str(model)),
                capsize=3,
                **style,
            )
        if s["n_train"].nunique() > 1:
            ax.set_xscale("log")
        ax.set(
            xlabel="training rows",
            ylabel=f"test {self.metric}",
            title=f"{self.frame['dataset'].iloc[0]}: score vs training-set size",
        )
        ax.legend(fontsize=8)
        return fig, ax

    def plot_cost(self, ax=None):
        """Tuning wall-clock (all trials) against the test metric at the largest training size."""
        from matplotlib.ticker import NullFormatter

        fig, ax = axes(ax, (6, 4))
        for _, r in self.largest().iterrows():
            if r["model"] == "majority":
                continue
            ax.errorbar(
                r["tune_seconds_mean"],
                r[f"{self.metric}_mean"],
                xerr=r["tune_seconds_std"],
                yerr=r[f"{self.metric}_std"],
                marker="o",
                capsize=3,
                color=COLORS.get(r["model"]),
                label=NAMES.get(r["model"], r["model"]),
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log axis overlap
        ax.set(
            xlabel="tuning wall-clock, all trials (s, log scale)",
            ylabel=f"test {self.metric}",
            title="cost vs score",
        )
        ax.legend(fontsize=8)
        return fig, ax

    def plot(self):
        """The cost against the score, beside the learning curve when there are >= 3 training
        sizes (a curve through one or two points says nothing); returns the figure."""
        import matplotlib.pyplot as plt

        if self.frame["n_train"].nunique() < 3:
            fig, _ = self.plot_cost()
            return fig
        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
        self.plot_learning_curve(a)
        self.plot_cost(b)
        fig.tight_layout()
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
        from dlnb.tabular.fairness import apply_thresholds, equal_fpr_thresholds, group_metrics

        table = self.source
        if table is None or table.task != "binary":
            raise ValueError("The bias audit needs the results of a binary classification table.")
        attribute = attribute or (table.sensitive[0] if table.sensitive else None)
        if attribute is None or attribute not in table.X.columns:
            raise ValueError(
                f"Name a sensitive column to audit (the table has {list(table.X.columns)})."
            )
        seed = self.frame["seed"].min() if seed is None else seed
        n_train = self.frame["n_train"].max() if n_train is None else n_train
        key = (model, int(seed), int(n_train))
        if key not in self.predictions:
            raise KeyError(
                f"No run {key} (model, seed, n_train); runs: {sorted(self.predictions)}."
            )
        run = self.predictions[key]
        groups = table.X[attribute].astype(str).to_numpy()
        test, valid = run["test_rows"], run["valid_rows"]
        scores = run["test"][:, 1]
        before = group_metrics(table.y[test], (scores >= 0.5).astype(int), groups[test])
        thresholds = equal_fpr_thresholds(run["valid"][:, 1], table.y[valid], groups[valid])
        after = group_metrics(
            table.y[test], apply_thresholds(scores, groups[test], thresholds), groups[test]
        )
        return Audit(model, attribute, before, after, thresholds)

    def report(self, model: str, seed: int | None = None, n_train: int | None = None) -> Report:
        """The classification report (scikit-learn) of one run's test predictions."""
        table = self.source
        if table is None or table.task == "regression":
            raise ValueError("A classification report needs the results of a classification table.")
        seed = int(self.frame["seed"].min() if seed is None else seed)
        n_train = int(self.frame["n_train"].max() if n_train is None else n_train)
        run = self.predictions.get((model, seed, n_train))
        if run is None:
            raise KeyError(f"No run {(model, seed, n_train)}; runs: {sorted(self.predictions)}.")
        return report_from_probs(table.y[run["test_rows"]], run["test"], table.classes or None)

    def describe(self) -> str:
        """What this run's numbers say about "boosting wins on moderate tables", in sentences."""
        m, sign, name = self.metric, (1 if self.higher_is_better else -1), NAMES.get
        top = self.largest()
        top = top[top["model"] != "majority"].set_index("model")
        if top.empty:
            return "No model other than the baseline was run."
        best = top.index[0]
        parts = [
            f"With {int(self.frame['n_train'].max()):,} training rows, the best mean test {m} "
            f"came from {name(best, best)} ({top.loc[best, f'{m}_mean']:.4f} ± "
            f"{top.loc[best, f'{m}_std']:.4f}, sample std over {int(top.loc[best, 'seeds'])} seeds)."
        ]
        deep = top.drop(index="xgboost", errors="ignore")
        if "xgboost" in top.index and not deep.empty:
            d = deep.index[0]
            diff = sign * (deep.loc[d, f"{m}_mean"] - top.loc["xgboost", f"{m}_mean"])
            noise = max(deep.loc[d, f"{m}_std"], top.loc["xgboost", f"{m}_std"])
            if abs(diff) <= noise:
                parts.append(
                    f"The best deep model, {name(d, d)}, and XGBoost are {abs(diff):.4f} "
                    f"apart, within the seed-to-seed spread (std up to {noise:.4f})."
                )
            else:
                winner, loser = (name(d, d), "XGBoost") if diff > 0 else ("XGBoost", name(d, d))
                parts.append(
                    f"{winner} beat {loser} by {abs(diff):.4f}, more than the "
                    f"seed-to-seed spread (std up to {noise:.4f})."
                )
            ratio = deep["tune_seconds_mean"].min() / max(
                top.loc["xgboost", "tune_seconds_mean"], 1e-9
            )
            parts.append(
                f"Tuning XGBoost took {top.loc['xgboost', 'tune_seconds_mean']:.1f} s; the "
                f"cheapest deep model took {ratio:.1f}x as long."
            )
            if self.frame["n_train"].nunique() > 1:
                ahead: dict[int, list[str]] = {}
                for model in deep.index:
                    size = self.crossover(model)
                    if size is not None:
                        ahead.setdefault(size, []).append(name(model, model))
                for size, models in sorted(ahead.items()):
                    parts.append(
                        f"Ahead of XGBoost at every size from {size:,} training rows on: "
                        f"{', '.join(models)}."
                    )
                if not ahead:
                    parts.append("No deep model stayed ahead of XGBoost up to the largest size.")
        return " ".join(parts)


def scoreboard(results: dict[str, Results]) -> str:
    """One sentence per table (from `Results.describe`) and a tally of where boosting won, in Markdown."""
    lines, wins, cheapest = [], 0, 0
    for name, r in results.items():
        top = r.largest()
        top = top[top["model"] != "majority"].set_index("model")
        if "xgboost" in top.index:  # best, or behind the best by no more than the seed-to-seed std
            best, m = top.index[0], r.metric
            gap = abs(top.loc[best, f"{m}_mean"] - top.loc["xgboost", f"{m}_mean"])
            wins += gap <= max(top.loc[best, f"{m}_std"], top.loc["xgboost", f"{m}_std"])
        cheapest += top["tune_seconds_mean"].idxmin() == "xgboost"
        lines.append(f"- **{name}**: {r.describe()}")
    n = len(results)
    lines.append(
        f"\nIn this run XGBoost had the best mean test score, or one within the seed-to-seed "
        f"spread of the best, on {wins} of {n} tables and was the cheapest to tune on "
        f"{cheapest} of {n}."
    )
    return "\n".join(lines)
