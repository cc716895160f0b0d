"""The claims toolkit: verdicts come from intervals, never from the sign of a mean."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dlnb import claims
from dlnb.recording import recorded


def test_t_interval_matches_the_textbook_formula():
    values = [0.1, 0.3, 0.2, 0.4]
    mean, low, high = claims.t_interval(values)
    half = 3.182446305284263 * np.std(values, ddof=1) / 2  # t(0.975, 3) * s / sqrt(4)
    assert mean == pytest.approx(0.25)
    assert (low, high) == pytest.approx((0.25 - half, 0.25 + half))


def test_a_consistent_gain_is_better():
    effect = claims.paired_effect([0.80, 0.82, 0.81], [0.70, 0.71, 0.72], names=("a", "b"))
    assert effect.verdict == "better" and effect.low > 0
    assert effect.sentence().startswith("a is better than b: 0.810 against 0.710, +0.100")


def test_a_positive_mean_inside_the_noise_is_not_a_finding():
    # the instructor's case: +0.004 on one seed among noisy others, a positive mean
    effect = claims.paired_effect([0.532, 0.60, 0.55], [0.528, 0.55, 0.58])
    assert effect.diff > 0
    assert effect.verdict == "within noise"
    assert "cannot tell them apart" in effect.sentence()


def test_a_consistent_loss_is_worse():
    effect = claims.paired_effect([0.5, 0.52, 0.51], [0.6, 0.61, 0.63])
    assert effect.verdict == "worse"
    assert " is worse than " in effect.sentence()


def test_lower_is_better_flips_the_verdict():
    rmse = claims.paired_effect([0.05, 0.051, 0.049], [0.06, 0.062, 0.059], higher_is_better=False)
    assert rmse.diff < 0 and rmse.verdict == "better"


def test_equivalence_needs_the_whole_interval_inside_the_band():
    tight = claims.paired_effect([0.700, 0.701, 0.702], [0.701, 0.700, 0.701], band=0.02)
    assert tight.verdict == "equivalent"
    loose = claims.paired_effect([0.70, 0.75, 0.66], [0.70, 0.70, 0.70], band=0.02)
    assert loose.verdict == "within noise"


def test_one_seed_is_unresolved_and_records_bounds_no_gate_passes():
    effect = claims.paired_effect([0.9], [0.5])
    assert effect.verdict == "unresolved" and not effect.resolved
    assert "too few" in effect.sentence()
    effect.record("single")
    values = recorded()
    assert values["single_low"] == -1e9 and values["single_high"] == 1e9
    assert values["single_verdict"] == "unresolved"


def test_record_writes_the_bounds_for_gates():
    effect = claims.paired_effect([0.8, 0.82, 0.81], [0.7, 0.71, 0.72])
    effect.record("gain")
    values = recorded()
    assert values["gain_low"] == pytest.approx(effect.low)
    assert values["gain_high"] == pytest.approx(effect.high)
    assert values["gain_n"] == 3 and values["gain_verdict"] == "better"


def test_bad_pairs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="equal-length"):
        claims.paired_effect([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        claims.paired_effect([0.1, math.nan], [0.1, 0.2])


def test_effect_from_frame_pairs_by_seed_and_drops_unpaired_seeds():
    frame = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b", "b"],
            "seed": [0, 1, 2, 1, 0],
            "test_accuracy": [0.9, 0.8, 0.7, 0.6, 0.5],
        }
    )
    effect = claims.effect_from_frame(frame, "a", "b")
    assert effect.n == 2
    assert effect.per_pair == pytest.approx((0.4, 0.2))  # seed 0: 0.9-0.5, seed 1: 0.8-0.6
    with pytest.raises(ValueError, match="no 'test_accuracy' rows for \\['c'\\]"):
        claims.effect_from_frame(frame, "a", "c")


def test_bootstrap_effect_over_examples():
    rng = np.random.default_rng(0)
    truth_a = (rng.random(2000) < 0.9).astype(float)
    truth_b = (rng.random(2000) < 0.8).astype(float)
    effect = claims.bootstrap_effect(truth_a, truth_b)
    assert effect.verdict == "better" and effect.unit == "examples"
    same = claims.bootstrap_effect(truth_a, truth_a[::-1].copy())
    assert same.verdict == "within noise"


def test_a_baseline_at_the_majority_rate_did_not_learn():
    broken = claims.learned("scratch", [0.427, 0.43, 0.425], reference=0.43)
    assert not broken.learned
    assert "did NOT learn" in broken.sentence()
    fine = claims.learned("TF-IDF", [0.61, 0.60, 0.62], reference=0.43)
    assert fine.learned and fine.sentence().startswith("TF-IDF learned")


def test_a_forecast_error_must_beat_the_naive_one():
    good = claims.learned("ETS", [10.0, 11.0, 10.5], reference=20.0, higher_is_better=False)
    bad = claims.learned("net", [19.0, 25.0, 21.0], reference=20.0, higher_is_better=False)
    assert good.learned and not bad.learned


def test_majority_rate_uses_the_training_majority():
    assert claims.majority_rate([0, 0, 1], [1, 1, 0, 0]) == 0.5
    with pytest.raises(ValueError):
        claims.majority_rate([], [1])


def test_capped_runs_are_flagged():
    check = claims.capped("MLP", [30, 30, 12], cap=30)
    assert check.any_capped and check.capped == 2
    assert "2 of 3 runs stopped at their 30-epoch cap" in check.sentence()
    assert not claims.capped("MLP", [12, 20], cap=30).any_capped


def test_effects_table_has_one_row_per_effect():
    effects = [
        claims.paired_effect([0.8, 0.82, 0.81], [0.7, 0.71, 0.72]),
        claims.paired_effect([0.5, 0.6, 0.55], [0.55, 0.5, 0.6]),
    ]
    table = claims.effects_table(effects)
    assert list(table.verdict) == ["better", "within noise"]


def test_proportion_interval_is_wilson_and_honest_at_the_edges():
    low, high = claims.proportion_interval(20, 20)
    assert 0.82 < low < 0.85 and high == 1.0
    low, high = claims.proportion_interval(0, 20)
    assert low == 0.0 and 0.15 < high < 0.18
    low, high = claims.proportion_interval(5, 12)
    assert 0.19 < low < 0.20 and 0.68 < high < 0.69
    with pytest.raises(ValueError):
        claims.proportion_interval(3, 2)
