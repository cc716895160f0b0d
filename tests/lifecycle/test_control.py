"""The retraining control: the step's own comparison, run where nothing drifted, and the effects
that set the gain after drift against it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb.lifecycle.control import _holdout_split, retrain_gain, retraining_effects, window_scores
from dlnb.lifecycle.retrain import RetrainPolicy, init_state, retrain_step
from tests.lifecycle.test_retrain import Cut, fit_cut, load_cut, rows

POLICY = RetrainPolicy(metric="accuracy", min_gain=0.05, min_labelled=100)


def test_the_control_makes_the_steps_own_comparison(tmp_path):
    """On a drifted window, `retrain_gain` gives the scores `retrain_step` decided on."""
    init_state(
        tmp_path / "s", Cut(0.0), rows(500, 0.0, 0), target="y", features=["x"], policy=POLICY
    )
    window = rows(600, 2.0, 1)
    decision = retrain_step(tmp_path / "s", window, window, train=fit_cut, load=load_cut)
    assert decision.alert and decision.step == 1
    control = retrain_gain(Cut(0.0), window, target="y", policy=POLICY, step=1, train=fit_cut)
    assert control.current_score == pytest.approx(decision.current_score)
    assert control.candidate_score == pytest.approx(decision.candidate_score)
    assert control.gain == pytest.approx(decision.gain)
    assert (control.n_train, control.n_holdout) == (decision.n_train, decision.n_holdout)


def test_without_drift_the_control_gains_little():
    window = rows(600, 0.0, 2)  # the concept the current model already has
    control = retrain_gain(Cut(0.0), window, target="y", policy=POLICY, step=1, train=fit_cut)
    assert abs(control.gain) < 0.02 and control.n_holdout == 180


def test_the_holdout_split_is_seeded_by_policy_and_step_and_ignores_unlabelled_rows():
    window = rows(100, 0.0, 3)
    held, train = _holdout_split(window, POLICY, step=2)
    again, _ = _holdout_split(window, POLICY, step=2)
    other, _ = _holdout_split(window, POLICY, step=3)
    assert len(held) == 30 and len(train) == 70 and held.index.equals(again.index)
    assert not held.index.equals(other.index)
    window.loc[:9, "y"] = np.nan
    control = retrain_gain(Cut(0.0), window, target="y", policy=POLICY, step=1, train=fit_cut)
    assert control.n_train + control.n_holdout == 90


def test_lower_is_better_flips_the_sign_of_the_gain():
    window = rows(100, 0.0, 4)
    policy = RetrainPolicy(metric="rmse", higher_is_better=False)
    scores = iter([0.5, 0.3])  # current, then candidate
    control = retrain_gain(
        Cut(0.0),
        window,
        target="y",
        policy=policy,
        step=1,
        train=lambda r, c: c,
        evaluate=lambda m, r: next(scores),
    )
    assert control.gain == pytest.approx(0.2)


def test_window_scores_pair_models_and_windows_by_seed():
    models = {0: Cut(0.0), 1: Cut(1.0)}
    windows = {s: [rows(200, 0.0, s), rows(200, 1.0, s)] for s in models}
    table = window_scores(models, windows, ["old", "new"], target="y", metric="accuracy")
    assert list(table.index) == [0, 1] and list(table.columns) == ["old", "new"]
    assert table.loc[0, "old"] > 0.95 and table.loc[1, "new"] > 0.95
    assert table.loc[0, "new"] < 0.9 and table.loc[1, "old"] < 0.9


def _frame(current, candidate) -> pd.DataFrame:
    current, candidate = np.asarray(current), np.asarray(candidate)
    return pd.DataFrame(
        {"current_score": current, "candidate_score": candidate, "gain": candidate - current},
        index=pd.Index(range(len(current)), name="seed"),
    )


def test_retraining_after_drift_is_set_against_the_control():
    drift = _frame([0.70, 0.71, 0.69], [0.76, 0.78, 0.75])
    control = _frame([0.70, 0.72, 0.70], [0.69, 0.715, 0.705])
    effects = retraining_effects(drift, control)
    assert effects["drift"].verdict == "better" and effects["control"].verdict == "within noise"
    assert effects["versus"].verdict == "better" and effects["versus"].n == 3
    same = retraining_effects(drift, _frame([0.70, 0.71, 0.69], [0.77, 0.77, 0.76]))
    assert same["versus"].verdict == "within noise"
    # only the seeds both ran are paired
    assert retraining_effects(drift, control.iloc[:2])["versus"].n == 2
