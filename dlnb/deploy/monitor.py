"""Drift monitoring: compare live windows of inputs and predictions with a reference window.

Two statistics per feature: the population stability index (PSI, on the reference's quantile
bins, or on categories for discrete features such as the predicted class) and the two-sample
Kolmogorov-Smirnov test (continuous features). A window alerts when any feature crosses a
threshold; `monitor_stream` runs that over a stream and `plot_drift` draws it over time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlnb.plots import axes

Features = dict[str, np.ndarray]


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted.

    psi: 0.1-0.2 is the usual "moderate" band and > 0.2 "significant" (credit-scoring practice).
    ks_pvalue: family-wise level, Bonferroni-corrected over the continuous features of a window.
    ks_statistic: minimum KS distance, so that large windows do not alert on negligible shifts.
    """

    psi: float = 0.2
    ks_pvalue: float = 0.01
    ks_statistic: float = 0.1


def _fractions(counts: np.ndarray, eps: float) -> np.ndarray:
    """Bin fractions floored at `eps` (an empty bin would make PSI infinite)."""
    return np.maximum(counts / max(counts.sum(), 1), eps)


def _psi_from_counts(ref_counts: np.ndarray, live_counts: np.ndarray, eps: float) -> float:
    """PSI = sum (live - ref) * ln(live / ref) over bins of fractions."""
    r, q = _fractions(ref_counts, eps), _fractions(live_counts, eps)
    return float(np.sum((q - r) * np.log(q / r)))


def _check_1d(name: str, values) -> np.ndarray:
    """A non-empty finite 1-D float array, or a clear error."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of one feature's values, got shape {a.shape}."
        )
    if not np.isfinite(a).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; drop or impute them before monitoring."
        )
    return a


def psi(reference, live, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of a continuous feature, on `bins` quantile bins of the reference."""
    ref, cur = _check_1d("reference", reference), _check_1d("live", live)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    live_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return _psi_from_counts(ref_counts, live_counts, eps)


def categorical_psi(
    reference, live, categories: Iterable | None = None, eps: float = 1e-4
) -> float:
    """Population stability index of a discrete feature (e.g. predicted class), one bin per category."""
    ref, cur = np.asarray(reference).ravel(), np.asarray(live).ravel()
    cats = (
        np.unique(np.concatenate([ref, cur]))
        if categories is None
        else np.asarray(list(categories))
    )
    ref_counts = np.array([(ref == c).sum() for c in cats])
    live_counts = np.array([(cur == c).sum() for c in cats])
    return _psi_from_counts(ref_counts, live_counts, eps)


def ks(reference, live) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: (statistic, p-value)."""
    from scipy.stats import ks_2samp

    result = ks_2samp(_check_1d("reference", reference), _check_1d("live", live))
    return float(result.statistic), float(result.pvalue)


def drift_report(
    reference: Features,
    live: Features,
    thresholds: DriftThresholds = DriftThresholds(),
    categorical: Iterable[str] = (),
) -> pd.DataFrame:
    """One row per feature: PSI, KS statistic and p-value, and whether it alerts (with the reason)."""
    categorical = set(categorical)
    missing = set(reference) ^ set(live)
    if missing:
        raise ValueError(
            f"reference and live must hold the same features; these are in only one: {sorted(missing)}."
        )
    n_continuous = max(len(set(reference) - categorical), 1)
    rows = []
    for name in reference:
        if name in categorical:
            value, stat, p = categorical_psi(reference[name], live[name]), np.nan, np.nan
        else:
            value, (stat, p) = psi(reference[name], live[name]), ks(reference[name], live[name])
        reasons = [f"PSI {value:.2f} >= {thresholds.psi}"] if value >= thresholds.psi else []
        if (
            not np.isnan(p)
            and p < thresholds.ks_pvalue / n_continuous
            and stat >= thresholds.ks_statistic
        ):
            reasons.append(f"KS {stat:.2f} (p={p:.1e})")
        rows.append(
            {
                "feature": name,
                "psi": value,
                "ks_statistic": stat,
                "ks_pvalue": p,
                "alert": bool(reasons),
                "reason": "; ".join(reasons),
            }
        )
    return pd.DataFrame(rows)


def monitor_stream(
    reference: Features,
    windows: Iterable[Features],
    thresholds: DriftThresholds = DriftThresholds(),
    categorical: Iterable[str] = (),
) -> pd.DataFrame:
    """`drift_report` for each live window of a stream, stacked with a `window` column (0, 1, ...)."""
    categorical = tuple(categorical)
    frames = [
        drift_report(reference, w, thresholds, categorical).assign(window=i)
        for i, w in enumerate(windows)
    ]
    if not frames:
        raise ValueError("The stream has no windows.")
    return pd.concat(frames, ignore_index=True)


def window_alerts(stream: pd.DataFrame) -> pd.DataFrame:
    """One row per window: whether any feature alerted, and which."""
    alert = stream.groupby("window").alert.any()
    names = (
        stream[stream.alert]
        .groupby("window")
        .feature.agg(", ".join)
        .reindex(alert.index, fill_value="")
    )
    return pd.DataFrame(
        {"window": alert.index, "alert": alert.to_numpy(), "features": names.to_numpy()}
    )


def first_alert(stream: pd.DataFrame, after: int = 0) -> int | None:
    """The first window at or after `after` in which any feature alerted, or None."""
    alerted = stream[(stream.window >= after) & stream.alert].window
    return int(alerted.min()) if len(alerted) else None


def plot_drift(
    stream: pd.DataFrame,
    metric: str = "psi",
    threshold: float | None = DriftThresholds.psi,
    shift_at: int | None = None,
    ax=None,
):
    """`metric` per feature over windows, with the alert threshold and the known shift; returns (fig, ax).

    Each feature keeps its colour across calls (features without the metric, e.g. KS for a
    categorical feature, are skipped), so plots of different metrics can be compared.
    """
    fig, ax = axes(ax, (8, 3.5))
    for i, (name, g) in enumerate(stream.groupby("feature", sort=False)):
        if g[metric].notna().any():
            ax.plot(g.window, g[metric], marker=".", color=f"C{i % 10}", label=name)
    if threshold is not None:
        ax.axhline(threshold, color="red", linestyle="--", label=f"threshold {threshold}")
    if shift_at is not None:
        ax.axvline(shift_at - 0.5, color="black", linestyle=":", label="shift starts")
    for w in stream[stream.alert].window.unique():
        ax.axvspan(w - 0.5, w + 0.5, color="red", alpha=0.08, linewidth=0)
    ax.set_xlabel("window")
    ax.set_ylabel(metric)
    ax.set_title(f"Drift over time ({metric}); shaded windows alerted")
    ax.legend(fontsize="small", ncol=2)
    return fig, ax


def image_features(x) -> Features:
    """Cheap per-image summaries to monitor instead of every pixel: mean, contrast, ink fraction, centre of mass."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 3:
        raise ValueError(
            f"image_features expects a batch of images (N, [C,] H, W), got shape {a.shape}."
        )
    a = a.reshape(len(a), -1, *a.shape[-2:]).mean(1)
    lo = a.reshape(len(a), -1).min(1)[:, None, None]
    ink = a > lo + 0.5 * (a.reshape(len(a), -1).max(1)[:, None, None] - lo)
    mass = a - lo
    total = np.maximum(mass.sum((1, 2)), 1e-12)
    rows, cols = np.arange(a.shape[1]), np.arange(a.shape[2])
    return {
        "mean": a.mean((1, 2)),
        "std": a.std((1, 2)),
        "ink_fraction": ink.mean((1, 2)),
        "centre_row": (mass.sum(2) * rows).sum(1) / total,
        "centre_col": (mass.sum(1) * cols).sum(1) / total,
    }


def prediction_features(logits) -> Features:
    """The predicted class and the model's confidence (max softmax probability) per sample."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return {"predicted_class": p.argmax(-1), "confidence": p.max(-1)}
