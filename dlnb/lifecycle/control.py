"""The control run of a retraining experiment: what retraining gains where nothing drifted.

`retrain_step` trains a candidate on a drifted window and compares it with the current model on
held-out rows of that same window. A candidate has an edge there whatever the drift: it was fitted
to rows like the held-out ones, by a fresh training run. `retrain_gain` runs the step's comparison
(the same shuffle, the same held-out share, the same training and metric) on any labelled window
without asking the drift monitor, so the gain on a window of the training era (no drift) is the
control that the gain after drift is measured against:

    control = retrain_gain(current, same_era_rows, target="good", policy=policy, step=1)
    drifted = retrain_gain(current, rows_of_the_1980s, target="good", policy=policy, step=2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dlnb import claims
from dlnb.lifecycle.retrain import RetrainPolicy, score_model, train_like

__all__ = [
    "RetrainComparison",
    "retrain_gain",
    "retraining_effects",
    "window_scores",
]


@dataclass(frozen=True)
class RetrainComparison:
    """Both models' scores on the held-out rows; `gain` is candidate minus current (its sign
    flipped when lower is better), as in a retraining `Decision`."""

    current_score: float
    candidate_score: float
    gain: float
    n_train: int
    n_holdout: int


def _holdout_split(
    labelled: pd.DataFrame, policy: RetrainPolicy, step: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(held-out rows, training rows) as `retrain_step` draws them at `step`: the rows shuffled
    with seed `policy.seed + step`, the first `holdout_fraction` of them held out."""
    rows = labelled.sample(frac=1.0, random_state=policy.seed + step)
    n_holdout = max(1, round(policy.holdout_fraction * len(rows)))
    return rows.iloc[:n_holdout], rows.iloc[n_holdout:]


def retrain_gain(
    current: Any,
    labelled: pd.DataFrame,
    *,
    target: str,
    policy: RetrainPolicy,
    step: int,
    train: Callable[[pd.DataFrame, Any], Any] | None = None,
    evaluate: Callable[[Any, pd.DataFrame], float] | None = None,
) -> RetrainComparison:
    """The comparison `retrain_step` makes at `step`, run on `labelled` whether or not it drifted:
    a candidate trained like `current` on the training rows, both scored on the held-out rows.

    Args:
        current: the current model.
        labelled: the window's rows with their labels (rows without one are left out).
        target: the label column.
        policy: the held-out share, the seed and the metric, as `retrain_step` uses them.
        step: the step whose shuffle is drawn (seed `policy.seed + step`).
        train: `train(rows, current)` returns a candidate (default `train_like`).
        evaluate: `evaluate(model, rows)` scores a model (default `score_model` on the
            policy's metric).
    """
    holdout, recent = _holdout_split(labelled[labelled[target].notna()], policy, step)
    candidate = (train or (lambda r, c: train_like(r, c, target, policy.seed)))(recent, current)
    score = evaluate or (lambda m, r: score_model(m, r, target, policy.metric))
    now, new = score(current, holdout), score(candidate, holdout)
    sign = 1.0 if policy.higher_is_better else -1.0
    return RetrainComparison(now, new, sign * (new - now), len(recent), len(holdout))


def window_scores(
    models: Mapping[int, Any],
    windows: Mapping[int, Sequence[pd.DataFrame]],
    periods: Sequence[str],
    *,
    target: str,
    metric: str = "roc_auc",
) -> pd.DataFrame:
    """Each seed's model scored (`score_model`) on each of that seed's labelled windows: one row
    per seed, one column per period, so that columns can be paired over seeds."""
    table = {
        seed: [score_model(model, w, target, metric) for w in windows[seed]]
        for seed, model in models.items()
    }
    return pd.DataFrame.from_dict(table, orient="index", columns=list(periods)).rename_axis("seed")


def retraining_effects(
    first: pd.DataFrame, controls: pd.DataFrame, metric: str = "ROC AUC"
) -> dict[str, claims.Effect]:
    """The retraining run against its control, paired over the seeds both hold (index: seed;
    columns `current_score`, `candidate_score`, `gain`): the candidate's gain after drift
    ("drift"), its gain where nothing drifted ("control"), and the first minus the second
    ("versus"), each with its 95 % interval."""
    seeds = first.index.intersection(controls.index)
    a, c = first.loc[seeds], controls.loc[seeds]
    on = f"{metric} on held-out films"
    return {
        "drift": claims.paired_effect(
            a["candidate_score"],
            a["current_score"],
            names=("the candidate retrained after drift", "the old model"),
            metric=on,
        ),
        "control": claims.paired_effect(
            c["candidate_score"],
            c["current_score"],
            names=("the candidate retrained without drift", "the old model"),
            metric=on,
        ),
        "versus": claims.paired_effect(
            a["gain"],
            c["gain"],
            names=("retraining after drift", "retraining without drift"),
            metric=f"{metric} gain",
        ),
    }
