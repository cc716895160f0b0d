"""Simulated shifts of a live stream and how fast a drift monitor notices them.

Two kinds of shift: covariate shift (the inputs change, `degrade`: dimmer, noisier images) at a
chosen severity, and label shift (`prior_shift_indices`: the class priors change while each
class's inputs stay as they were). `severity_sweep` measures detection delay and false alarms
over shift sizes and seeds; `group_alerts` says which group of monitored features alerted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dlnb.deploy.monitor import DriftThresholds, Features, first_alert, monitor_stream
from dlnb.plots import axes


def degrade(
    x: np.ndarray,
    severity: float,
    rng: np.random.Generator,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    contrast_loss: float = 0.5,
    noise: float = 0.3,
) -> np.ndarray:
    """Dimmer, noisier images: contrast times 1 - contrast_loss*severity, plus noise of sd noise*severity.

    `x` holds images normalised as (pixels - mean) / std with pixels in [0, 1]; the change is
    made to the pixels (clipped to [0, 1]) and the result normalised the same way again.
    Severity 0 returns the images unchanged.
    """
    if not 0 <= severity * contrast_loss <= 1:
        raise ValueError(
            f"severity must be in [0, {1 / contrast_loss:g}] for contrast_loss={contrast_loss}, got {severity}."
        )
    pixels = np.asarray(x, dtype=np.float64) * std + mean
    out = (1 - contrast_loss * severity) * pixels + rng.normal(0, noise * severity, pixels.shape)
    return ((np.clip(out, 0, 1) - mean) / std).astype(np.float32)


def split_windows(features: Features, window: int) -> list[Features]:
    """Cut per-sample features of a whole stream into consecutive windows of `window` samples."""
    sizes = {len(v) for v in features.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"all features must have one value per sample, got lengths {sorted(sizes)}."
        )
    (n,) = sizes
    return [{k: v[i : i + window] for k, v in features.items()} for i in range(0, n, window)]


def prior_shift_indices(
    labels: np.ndarray, priors: Sequence[float], n: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of `n` samples whose classes follow `priors` (class c with probability priors[c]).

    Within a class the samples are drawn uniformly without replacement, so p(x | y) is
    unchanged: only p(y) moves. Raises when a class has fewer samples than it needs.
    """
    labels = np.asarray(labels)
    p = np.asarray(priors, dtype=np.float64)
    if p.ndim != 1 or (p < 0).any() or not np.isclose(p.sum(), 1):
        raise ValueError(f"priors must be non-negative and sum to 1, got {p.tolist()}.")
    counts = rng.multinomial(n, p)
    picks = []
    for c, k in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if k > len(pool):
            raise ValueError(f"class {c} needs {k} samples but only {len(pool)} are available.")
        picks.append(rng.choice(pool, size=k, replace=False))
    return rng.permutation(np.concatenate(picks))


def severity_sweep(
    reference: Features,
    make_stream: Callable[[float, int], list[Features]],
    severities: Iterable[float],
    seeds: Iterable[int],
    shift_at: int,
    thresholds: DriftThresholds | None = None,
    categorical: Iterable[str] = (),
) -> pd.DataFrame:
    """Monitor one stream per (severity, seed); `make_stream(severity, seed)` shifts windows from `shift_at` on.

    One row per stream: `delay` (windows from the shift to the first alert; NaN if none),
    `false_alarms` among the `shift_at` unshifted windows, `alert_rate_after` (the fraction of
    shifted windows that alerted), and the median over shifted windows of the largest PSI and
    the largest KS statistic of any feature.
    """
    categorical, seeds = tuple(categorical), tuple(seeds)
    thresholds = thresholds or DriftThresholds()
    rows = []
    for severity in severities:
        for seed in seeds:
            stream = monitor_stream(reference, make_stream(severity, seed), thresholds, categorical)
            per_window = stream.groupby("window").agg(
                alert=("alert", "any"), psi=("psi", "max"), ks=("ks_statistic", "max")
            )
            after = per_window[per_window.index >= shift_at]
            first = first_alert(stream, after=shift_at)
            rows.append(
                {
                    "severity": severity,
                    "seed": seed,
                    "delay": np.nan if first is None else first - shift_at,
                    "false_alarms": int(per_window.alert[per_window.index < shift_at].sum()),
                    "unshifted_windows": shift_at,
                    "shifted_windows": len(after),
                    "alert_rate_after": float(after.alert.mean()),
                    "psi_max": float(after.psi.median()),
                    "ks_max": float(after.ks.median()),
                }
            )
    return pd.DataFrame(rows)


def rate_interval(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score 95 % interval of a rate of `hits` in `n` (sound at 0 and at n, where a
    normal approximation collapses to a point)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if hits == 0 else float(max(0.0, centre - half))
    return low, 1.0 if hits == n else float(min(1.0, centre + half))


def false_alarm_rate(sweep: pd.DataFrame) -> tuple[float, int]:
    """(fraction of unshifted windows that alerted, number of them): pre-shift windows, and all at severity 0."""
    null = sweep.severity == 0
    alarms = sweep.false_alarms.sum() + (sweep.alert_rate_after * sweep.shifted_windows)[null].sum()
    windows = sweep.unshifted_windows.sum() + sweep.shifted_windows[null].sum()
    return float(alarms / windows), int(windows)


def summarise_sweep(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per severity: detected streams, mean and worst delay, the alert rate after the shift with
    its Wilson 95 % interval over all shifted windows of all seeds (`alert_rate_low`,
    `alert_rate_high`, `shifted_windows`), and the median largest PSI and KS."""
    alerts = (sweep.alert_rate_after * sweep.shifted_windows).round().astype(int)
    summary = (
        sweep.assign(alerts=alerts)
        .groupby("severity")
        .agg(
            detected=("delay", lambda d: f"{d.notna().sum()}/{len(d)}"),
            mean_delay=("delay", "mean"),
            worst_delay=("delay", "max"),
            alert_rate_after=("alert_rate_after", "mean"),
            alerts=("alerts", "sum"),
            shifted_windows=("shifted_windows", "sum"),
            psi_max=("psi_max", "median"),
            ks_max=("ks_max", "median"),
        )
    )
    bounds = [
        rate_interval(k, n) for k, n in zip(summary.alerts, summary.shifted_windows, strict=True)
    ]
    summary.insert(4, "alert_rate_low", [b[0] for b in bounds])
    summary.insert(5, "alert_rate_high", [b[1] for b in bounds])
    return summary


def plot_sweep(sweep: pd.DataFrame, psi_threshold: float = DriftThresholds.psi, axs=None):
    """Detection delay (per seed; undetected drawn above the last window) and PSI against shift size; returns (fig, axs)."""
    if axs is None:
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(1, 2, figsize=(12, 3.8))
    fig, left = axes(axs[0], (6, 3.8))
    never = float(sweep.shifted_windows.max())
    for i, (seed, g) in enumerate(sweep.groupby("seed")):
        hit = g.delay.notna()
        left.plot(
            g.severity[hit], g.delay[hit], "o", color=f"C{i}", alpha=0.7, label=f"seed {seed}"
        )
        left.plot(g.severity[~hit], [never] * int((~hit).sum()), "x", color=f"C{i}")
    left.axhline(never, color="grey", linestyle=":", label="x: never detected")
    left.set(xlabel="shift severity", ylabel="delay (windows)", title="Detection delay")
    left.legend(fontsize="small")
    _, right = axes(axs[1], (6, 3.8))
    summary = sweep.groupby("severity")[["psi_max", "ks_max"]].median()
    right.plot(summary.index, summary.psi_max, marker="o", label="largest PSI (median window)")
    right.plot(summary.index, summary.ks_max, marker="s", label="largest KS statistic")
    right.axhline(
        psi_threshold, color="red", linestyle="--", label=f"PSI threshold {psi_threshold}"
    )
    right.set(xlabel="shift severity", title="Drift statistics after the shift")
    right.set_yscale("log")
    right.legend(fontsize="small")
    return fig, axs


def group_alerts(stream: pd.DataFrame, groups: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """One row per window, one boolean column per group of features: did any feature of the group alert."""
    out = pd.DataFrame({"window": np.sort(stream.window.unique())})
    for name, features in groups.items():
        sub = stream[stream.feature.isin(list(features))]
        if sub.empty:
            raise ValueError(f"group {name!r} names no monitored feature: {list(features)}.")
        out[name] = sub.groupby("window").alert.any().reindex(out.window, fill_value=False).values
    return out
