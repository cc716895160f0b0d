"""Feature attributions for tabular models, next to XGBoost's own feature importance.

`attribute_tabular` explains any `predict(rows) -> scores` (an XGBoost model, a scikit-learn
pipeline) with Captum's Shapley value sampling or feature ablation against a background mean;
`xgboost_importance` reads the booster's own importances (gain, weight, cover) or TreeSHAP;
`importance_table` puts them side by side as shares of the total.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

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
        import xgboost

        if x is None:
            raise ValueError("xgboost_importance(kind='shap') needs the rows `x` to explain.")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"`x` must be shaped (N, {n}) for this booster, got {x.shape}.")
        contribs = booster.predict(
            xgboost.DMatrix(x, feature_names=booster.feature_names), pred_contribs=True
        )
        return np.abs(contribs[..., :-1]).reshape(-1, n).mean(axis=0)  # last column: the bias
    scores = booster.get_score(importance_type=kind)
    names = booster.feature_names or [f"f{i}" for i in range(n)]
    return np.array([scores.get(name, 0.0) for name in names], dtype=np.float64)


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
