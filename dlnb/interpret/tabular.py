"""Feature attributions for tabular models, next to XGBoost's own feature importance.

`attribute_tabular` explains any `predict(rows) -> scores` (an XGBoost model, a scikit-learn
pipeline) with Captum's Shapley value sampling or feature ablation against a background mean;
`xgboost_importance` reads the booster's own importances (gain, weight, cover) or TreeSHAP;
`importance_table` puts them side by side as shares of the total.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlnb import claims

if TYPE_CHECKING:
    import pandas as pd

TABULAR_METHODS = ("shapley", "ablation")


def attribute_tabular(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    background: np.ndarray,
    method: str = "shapley",
    *,
    target: int | None = None,
    n_samples: int = 25,
    seed: int = 0,
) -> np.ndarray:
    """Feature attributions (N, F) of a black-box `predict` against the mean of `background`."""
    from captum.attr import FeatureAblation, ShapleyValueSampling

    if method not in TABULAR_METHODS:
        raise ValueError(f"Unknown tabular method {method!r}; choose one of {TABULAR_METHODS}.")
    x = np.asarray(x, dtype=np.float32)
    background = np.asarray(background, dtype=np.float32)
    if x.ndim != 2 or background.ndim != 2 or x.shape[1] != background.shape[1]:
        raise ValueError(
            f"Expected tables shaped (N, F) with the same F, got x {x.shape} and background "
            f"{background.shape}; use x.reshape(1, -1) for a single row."
        )

    def forward(t: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(predict(t.detach().cpu().numpy()), dtype=np.float32))

    xt, base = torch.from_numpy(x), torch.from_numpy(background.mean(axis=0, keepdims=True))
    torch.manual_seed(seed)
    if method == "shapley":
        attr = ShapleyValueSampling(forward).attribute(
            xt, baselines=base, target=target, n_samples=n_samples, perturbations_per_eval=16
        )
    else:
        attr = FeatureAblation(forward).attribute(xt, baselines=base, target=target)
    return attr.numpy()


def xgboost_importance(model, kind: str = "gain", x: np.ndarray | None = None) -> np.ndarray:
    """XGBoost's importance per feature: a `get_score` type ("gain", "weight", "cover", ...)
    or "shap", the mean |TreeSHAP| contribution over the rows `x`."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    n = booster.num_features()
    if kind == "shap":
        if x is None:
            raise ValueError("xgboost_importance(kind='shap') needs the rows `x` to explain.")
        return np.abs(xgboost_contributions(model, x)).reshape(-1, n).mean(axis=0)
    scores = booster.get_score(importance_type=kind)
    names = booster.feature_names or [f"f{i}" for i in range(n)]
    return np.array([scores.get(name, 0.0) for name in names], dtype=np.float64)


def xgboost_contributions(model, x: np.ndarray) -> np.ndarray:
    """TreeSHAP contributions of each feature to each row's margin: (N, F), or (N, K, F) for K
    classes."""
    import xgboost

    booster = model.get_booster() if hasattr(model, "get_booster") else model
    n = booster.num_features()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"`x` must be shaped (N, {n}) for this booster, got {x.shape}.")
    contribs = booster.predict(
        xgboost.DMatrix(x, feature_names=booster.feature_names), pred_contribs=True
    )
    return contribs[..., :-1]  # the last column is the bias


def importance_table(
    importances: dict[str, np.ndarray], feature_names: Sequence[str]
) -> pd.DataFrame:
    """Importances as shares of their total, one column per source, sorted by the first."""
    import pandas as pd

    columns = {}
    for name, values in importances.items():
        v = np.abs(np.asarray(values, dtype=np.float64))
        v = v.mean(axis=0) if v.ndim == 2 else v  # per-row attributions -> mean |attribution|
        if v.shape != (len(feature_names),):
            raise ValueError(
                f"{name!r} has {v.shape[-1]} values for {len(feature_names)} features."
            )
        columns[name] = v / v.sum() if v.sum() > 0 else v
    table = pd.DataFrame(columns, index=list(feature_names))
    return table.sort_values(next(iter(columns)), ascending=False)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, 2 for the next, ..."""
    order = np.argsort(-np.asarray(values), kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


@dataclass
class RankingAgreement:
    """How closely per-row attributions rank the features like an exact per-row method and like a
    fixed global importance, with percentile bootstrap intervals over the explained rows."""

    features: list[str]
    names: tuple[str, str, str]  # the attribution, the exact per-row method, the global one
    exact: tuple[float, float, float]  # Spearman with the exact method: value, low, high
    fixed: tuple[float, float, float]  # Spearman with the global importance: value, low, high
    effect: claims.Effect  # exact minus fixed, paired over the same resamples
    ranks: dict[str, np.ndarray]  # feature ranks (1 = most important) under each source
    rows: int

    def markdown(self, top: int = 3) -> str:
        """The agreement in numbers: both correlations with intervals, the paired difference
        (worded by its verdict), and where the attribution's top features rank elsewhere."""
        ours, exact, fixed = self.names
        rho = "{:.2f} (95 % CI {:.2f} to {:.2f})"
        text = (
            f"Over all {len(self.features)} features, {ours} ranks them like {exact} with Spearman "
            f"{rho.format(*self.exact)} and like {fixed} with {rho.format(*self.fixed)}, "
            f"bootstrapped over the {self.rows} explained rows. "
        )
        verdict, diff = self.effect.verdict, self.effect.interval()
        if verdict == "better":
            text += f"It agrees more with {exact} than with {fixed}: {diff}. "
        elif verdict == "worse":
            text += f"It agrees more with {fixed} than with {exact}: {diff}. "
        else:
            text += f"The two agreements are within noise of each other: {diff}. "
        order = np.argsort(self.ranks[ours])[:top]
        where = "; ".join(
            f"{self.features[i]} (#{self.ranks[exact][i]} under {exact}, "
            f"#{self.ranks[fixed][i]} under {fixed})"
            for i in order
        )
        return text + f"Its top {top} of {len(self.features)}: {where}."


def _resampled_agreement(
    a: np.ndarray, b: np.ndarray, g: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """(resamples, 2): Spearman of mean |a| with mean |b| and with `g`, on bootstrap row draws."""
    from dlnb.interpret.sanity import spearman

    rng = np.random.default_rng(seed)
    return np.array(
        [
            (spearman(a[i].mean(0), b[i].mean(0)), spearman(a[i].mean(0), g))
            for i in rng.integers(0, len(a), size=(resamples, len(a)))
        ]
    )


def ranking_agreement(
    attributions: np.ndarray,
    exact: np.ndarray,
    fixed: np.ndarray,
    features: Sequence[str],
    *,
    names: tuple[str, str, str] = ("Shapley sampling", "TreeSHAP", "gain"),
    resamples: int = 1000,
    seed: int = 0,
) -> RankingAgreement:
    """Compare the ranking of mean |`attributions`| (N, F) with that of mean |`exact`| (N, F) on
    the same rows and with a fixed global importance `fixed` (F,), over bootstrap resamples."""
    from dlnb.interpret.sanity import spearman

    a, b = np.abs(np.asarray(attributions, float)), np.abs(np.asarray(exact, float))
    g = np.asarray(fixed, float)
    if a.shape != b.shape or a.ndim != 2 or not a.shape[1] == len(g) == len(features):
        raise ValueError(f"Shapes do not match: {a.shape}, {b.shape}, {g.shape}, {len(features)}.")
    draws = _resampled_agreement(a, b, g, resamples, seed)
    point = (spearman(a.mean(0), b.mean(0)), spearman(a.mean(0), g))
    bounds = np.quantile(draws, [0.025, 0.975], axis=0)
    diff = draws[:, 0] - draws[:, 1]
    low, high = np.quantile(diff, [0.025, 0.975])
    effect = claims.Effect(
        ours=f"agreement with {names[1]}",
        baseline=f"agreement with {names[2]}",
        diff=point[0] - point[1],
        low=float(low),
        high=float(high),
        n=len(a),
        ours_mean=point[0],
        baseline_mean=point[1],
        metric="Spearman",
        unit="bootstrapped rows",
    )
    ranks = {names[0]: _ranks(a.mean(0)), names[1]: _ranks(b.mean(0)), names[2]: _ranks(g)}
    return RankingAgreement(
        features=list(features),
        names=names,
        exact=(point[0], float(bounds[0, 0]), float(bounds[1, 0])),
        fixed=(point[1], float(bounds[0, 1]), float(bounds[1, 1])),
        effect=effect,
        ranks=ranks,
        rows=len(a),
    )
