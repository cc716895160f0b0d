"""Claims that survive a careful reader: effects with 95 % intervals, baselines that learned, runs
that converged.

A lesson states an effect only through this module. `paired_effect` takes one score per seed for
two methods (the same seeds, so each difference is paired), and returns an `Effect`: the mean
difference, a t-based 95 % interval, the count and a verdict (`better`, `within noise`, `worse`;
`equivalent` when a band for "no difference" is given and the interval lies inside it). The
sentence a notebook prints is `Effect.sentence()`, chosen by the verdict, never by a sign.

    effect = paired_effect(fine_tuned, tfidf, ours="fine-tuned", baseline="TF-IDF")
    print(effect.sentence())   # "fine-tuned is better than TF-IDF: +0.041 (95 % CI +0.012 to ...)"
    effect.record("finetune_minus_tfidf")   # _diff, _low, _high, _n for the runner's gates

`learned` checks that a baseline beat the majority class (or a naive forecast) by a margin before
it counts, and `capped` flags runs that stopped at their epoch cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dlnb.recording import record

Verdict = Literal["better", "within noise", "worse", "equivalent", "unresolved"]


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean and the two-sided t-based `confidence` interval of `values` (infinite below 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value.")
    mean = float(x.mean())
    if x.size < 2:
        return mean, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def _signed(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else ("+inf" if value > 0 else "-inf")


@dataclass(frozen=True)
class Effect:
    """A paired difference `ours - baseline` over seeds (or examples) with its interval and verdict.

    `diff`, `low`, `high` are in the metric's units; with `higher_is_better=False` (an error, a
    loss) a negative difference is an improvement. `band` > 0 makes it a "no difference" claim:
    the verdict is `equivalent` when the whole interval lies within +-band.
    """

    ours: str
    baseline: str
    diff: float
    low: float
    high: float
    n: int
    ours_mean: float
    baseline_mean: float
    metric: str = "accuracy"
    higher_is_better: bool = True
    band: float = 0.0
    unit: str = "seeds"
    per_pair: tuple[float, ...] = field(default=(), repr=False)

    @property
    def verdict(self) -> Verdict:
        """better / worse (the interval excludes 0), equivalent (inside the band), within noise."""
        if self.n < 2 or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "unresolved"
        if self.band > 0 and -self.band <= self.low and self.high <= self.band:
            return "equivalent"
        gain_low, gain_high = (
            (self.low, self.high) if self.higher_is_better else (-self.high, -self.low)
        )
        if gain_low > 0:
            return "better"
        if gain_high < 0:
            return "worse"
        return "within noise"

    @property
    def resolved(self) -> bool:
        """Whether the interval decides the question (better, worse or equivalent)."""
        return self.verdict in ("better", "worse", "equivalent")

    def interval(self) -> str:
        """'+0.041 (95 % CI +0.012 to +0.070, 5 seeds)'."""
        return (
            f"{_signed(self.diff)} {self.metric} (95 % CI {_signed(self.low)} to "
            f"{_signed(self.high)}, {self.n} {self.unit})"
        )

    def sentence(self) -> str:
        """One plain sentence chosen by the verdict, with the numbers it rests on."""
        means = f"{self.ours_mean:.3f} against {self.baseline_mean:.3f}"
        verdict = self.verdict
        if verdict == "better":
            return f"{self.ours} is better than {self.baseline}: {means}, {self.interval()}."
        if verdict == "worse":
            return f"{self.ours} is worse than {self.baseline}: {means}, {self.interval()}."
        if verdict == "equivalent":
            return (
                f"{self.ours} and {self.baseline} are equivalent within +-{self.band:g}: {means}, "
                f"{self.interval()}."
            )
        if verdict == "unresolved":
            return (
                f"{self.ours} against {self.baseline} is unresolved: {means} on {self.n} "
                f"{self.unit}, too few to give an interval."
            )
        return (
            f"{self.ours} and {self.baseline} are within noise of each other: {means}, "
            f"{self.interval()}; this run cannot tell them apart."
        )

    def record(self, name: str) -> None:
        """Record `name_diff`, `name_low`, `name_high`, `name_n` (and `name_verdict`) for gates.

        An unresolved interval (one seed) records its bounds as -1e9 / 1e9, which no gate passes.
        """
        record(f"{name}_diff", self.diff)
        record(f"{name}_low", self.low if math.isfinite(self.low) else -1e9)
        record(f"{name}_high", self.high if math.isfinite(self.high) else 1e9)
        record(f"{name}_n", self.n)
        record(f"{name}_verdict", self.verdict)


def paired_effect(
    ours: Sequence[float],
    baseline: Sequence[float],
    *,
    names: tuple[str, str] = ("ours", "baseline"),
    metric: str = "accuracy",
    higher_is_better: bool = True,
    band: float = 0.0,
    confidence: float = 0.95,
) -> Effect:
    """The paired effect of `ours` over `baseline`: scores of the same seeds, in the same order.

    Args:
        ours: one score per seed for the method the claim is about.
        baseline: the other method's scores on the same seeds (same length and order).
        names: how the two methods are called in sentences.
        metric: the metric's name in sentences ("test accuracy", "RMSE").
        higher_is_better: False for errors and losses.
        band: > 0 for a "no difference" claim: equivalent when the interval lies in +-band.
        confidence: the interval's level.
    """
    a, b = np.asarray(ours, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"paired_effect needs two equal-length, non-empty lists of per-seed scores; got "
            f"{a.shape} and {b.shape}. Pair the runs by seed first (see `effect_from_frame`)."
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(
            "paired_effect got a NaN or infinite score: check the runs that produced it."
        )
    mean, low, high = t_interval(a - b, confidence)
    return Effect(
        ours=names[0],
        baseline=names[1],
        diff=mean,
        low=low,
        high=high,
        n=int(a.size),
        ours_mean=float(a.mean()),
        baseline_mean=float(b.mean()),
        metric=metric,
        higher_is_better=higher_is_better,
        band=band,
        per_pair=tuple(float(d) for d in a - b),
    )


def effect_from_frame(
    frame,
    ours: str,
    baseline: str,
    metric: str = "test_accuracy",
    *,
    method_column: str = "method",
    pair_on: str = "seed",
    **kwargs,
) -> Effect:
    """`paired_effect` of two methods' rows of a tidy frame (one row per method and seed).

    Rows are paired on `pair_on`; seeds that only one method ran are left out. Extra keyword
    arguments go to `paired_effect` (`higher_is_better`, `band`, `names`).
    """
    table = frame.pivot_table(index=pair_on, columns=method_column, values=metric)
    missing = [m for m in (ours, baseline) if m not in table.columns]
    if missing:
        raise ValueError(
            f"The frame has no {metric!r} rows for {missing}; it has {list(table.columns)}."
        )
    both = table[[ours, baseline]].dropna()
    kwargs.setdefault("names", (ours, baseline))
    kwargs.setdefault("metric", metric.replace("_", " "))
    return paired_effect(both[ours].to_numpy(), both[baseline].to_numpy(), **kwargs)


def bootstrap_effect(
    ours: Sequence[float],
    baseline: Sequence[float],
    *,
    names: tuple[str, str] = ("ours", "baseline"),
    metric: str = "accuracy",
    resamples: int = 2000,
    seed: int = 0,
) -> Effect:
    """The paired effect over examples: per-example scores (e.g. 1 for a correct answer) of two
    models on the same test rows, with a percentile bootstrap 95 % interval of the mean difference."""
    a, b = np.asarray(ours, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(
            "bootstrap_effect needs per-example scores of both models on the same rows."
        )
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Effect(
        ours=names[0],
        baseline=names[1],
        diff=float(diff.mean()),
        low=float(low),
        high=float(high),
        n=int(diff.size),
        ours_mean=float(a.mean()),
        baseline_mean=float(b.mean()),
        metric=metric,
        unit="examples",
    )


@dataclass(frozen=True)
class BaselineCheck:
    """Whether a model learned: its scores over seeds against a reference it must beat by `margin`."""

    name: str
    mean: float
    low: float
    reference: float
    reference_name: str
    margin: float
    n: int
    higher_is_better: bool = True

    @property
    def learned(self) -> bool:
        """The interval's worse bound beats the reference by at least the margin."""
        if self.higher_is_better:
            return self.low - self.reference >= self.margin
        return self.reference - self.low >= self.margin

    def sentence(self) -> str:
        """'TF-IDF learned: 0.612 (95 % CI from 0.590) against 0.430 for the majority class.'"""
        bound = "from" if self.higher_is_better else "up to"
        shown = f"{self.mean:.3f} (95 % CI {bound} {self.low:.3f}, {self.n} seeds)"
        against = f"{self.reference:.3f} for {self.reference_name}"
        if self.learned:
            return f"{self.name} learned: {shown} against {against}."
        return (
            f"{self.name} did NOT learn enough to count as a baseline: {shown} against {against} "
            f"(it must be {self.margin:g} better); comparisons with it prove nothing."
        )


def learned(
    name: str,
    scores: Sequence[float],
    reference: float,
    *,
    margin: float = 0.02,
    reference_name: str = "the majority class",
    higher_is_better: bool = True,
) -> BaselineCheck:
    """Check that a model beat `reference` (the majority rate, a naive forecast's error) over seeds.

    The worse end of the scores' 95 % interval must beat the reference by `margin`; with one seed
    that end is the score itself.
    """
    x = np.asarray(scores, dtype=float)
    mean, low, high = t_interval(x)
    if x.size < 2:
        low = high = mean
    return BaselineCheck(
        name=name,
        mean=mean,
        low=low if higher_is_better else high,
        reference=float(reference),
        reference_name=reference_name,
        margin=margin,
        n=int(x.size),
        higher_is_better=higher_is_better,
    )


def majority_rate(train_labels: Sequence, test_labels: Sequence) -> float:
    """Accuracy on `test_labels` of always predicting the most frequent class of `train_labels`."""
    train, test = np.asarray(train_labels), np.asarray(test_labels)
    if train.size == 0 or test.size == 0:
        raise ValueError("majority_rate needs training and test labels.")
    values, counts = np.unique(train, return_counts=True)
    return float(np.mean(test == values[counts.argmax()]))


@dataclass(frozen=True)
class CapCheck:
    """How many runs stopped at their epoch cap (and may be under-trained)."""

    name: str
    capped: int
    runs: int
    cap: int

    @property
    def any_capped(self) -> bool:
        """Whether any run reached its cap."""
        return self.capped > 0

    def sentence(self) -> str:
        """A plain note, to print next to any comparison this model takes part in."""
        if not self.capped:
            return f"{self.name}: every run stopped before its {self.cap}-epoch cap (converged)."
        return (
            f"{self.name}: {self.capped} of {self.runs} runs stopped at their {self.cap}-epoch cap, "
            "so they may be under-trained and a comparison with them may flatter the other side."
        )


def capped(name: str, epochs_run: Sequence[int], cap: int) -> CapCheck:
    """Flag runs whose number of epochs reached `cap` (early stopping never fired)."""
    epochs = np.asarray(epochs_run, dtype=int)
    if cap < 1 or epochs.size == 0:
        raise ValueError(
            "capped needs a cap of at least 1 epoch and the epochs of at least one run."
        )
    return CapCheck(name=name, capped=int((epochs >= cap).sum()), runs=int(epochs.size), cap=cap)


def effects_table(effects: Sequence[Effect]):
    """A tidy frame of effects: one row each with means, difference, interval, n and verdict."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "ours": e.ours,
                "baseline": e.baseline,
                "metric": e.metric,
                "ours mean": e.ours_mean,
                "baseline mean": e.baseline_mean,
                "difference": e.diff,
                "95% low": e.low,
                "95% high": e.high,
                "n": e.n,
                "verdict": e.verdict,
            }
            for e in effects
        ]
    )


def proportion_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a success rate `successes` / `n`.

    Unlike a bootstrap, it stays honest at 0 or n successes (20 of 20 gives about 0.84 to 1).
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(
            f"proportion_interval needs 0 <= successes <= n and n > 0; got {successes}, {n}."
        )
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
