"""The bias audit: per-group rates from counts, gaps, and per-group thresholds that equalise FPR."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.tabular.fairness import (
    apply_thresholds,
    disparities,
    equal_fpr_thresholds,
    group_metrics,
    small_groups,
    tradeoff,
)


def _labels(tp: int, fp: int, tn: int, fn: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.ones(tp), np.zeros(fp), np.zeros(tn), np.ones(fn)].astype(int)
    p = np.r_[np.ones(tp), np.ones(fp), np.zeros(tn), np.zeros(fn)].astype(int)
    return y, p


def test_group_metrics_match_the_confusion_counts():
    counts = {"a": (40, 10, 30, 20), "b": (5, 15, 70, 10)}
    ys, ps, gs = [], [], []
    for g, c in counts.items():
        y, p = _labels(*c)
        ys.append(y), ps.append(p), gs.append(np.full(len(y), g))
    m = group_metrics(np.concatenate(ys), np.concatenate(ps), np.concatenate(gs))
    for g, (tp, fp, tn, fn) in counts.items():
        n = tp + fp + tn + fn
        assert m.loc[g, "n"] == n
        assert m.loc[g, "fpr"] == pytest.approx(fp / (fp + tn))
        assert m.loc[g, "fnr"] == pytest.approx(fn / (fn + tp))
        assert m.loc[g, "accuracy"] == pytest.approx((tp + tn) / n)
        assert m.loc[g, "selection_rate"] == pytest.approx((tp + fp) / n)
        assert m.loc[g, "base_rate"] == pytest.approx((tp + fn) / n)
    assert m.loc["all", "n"] == 200 and m["share"].drop("all").sum() == pytest.approx(1)
    gaps = disparities(m)
    assert gaps["fpr_gap"] == pytest.approx(abs(10 / 40 - 15 / 85))
    assert gaps["selection_ratio"] == pytest.approx((20 / 100) / (50 / 100))


def test_equal_fpr_thresholds_equalise_false_positive_rates():
    rng = np.random.default_rng(0)
    n = 20_000
    groups = rng.choice(["a", "b"], n, p=[0.7, 0.3])
    y = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(2 * y - 1 + 0.8 * (groups == "b") + rng.normal(0, 1, n))))
    before = group_metrics(y, (scores >= 0.5).astype(int), groups)
    assert disparities(before)["fpr_gap"] > 0.15  # group b is flagged far more often

    half = n // 2  # fit on one half ("validation"), check on the other ("test")
    t = equal_fpr_thresholds(scores[:half], y[:half], groups[:half], target_fpr=0.2)
    after = group_metrics(
        y[half:], apply_thresholds(scores[half:], groups[half:], t), groups[half:]
    )
    assert t["b"] > t["a"]
    assert abs(after.loc["a", "fpr"] - 0.2) < 0.03 and abs(after.loc["b", "fpr"] - 0.2) < 0.03


def test_bad_audit_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same length"):
        group_metrics([0, 1], [0, 1, 1], ["a", "a"])
    with pytest.raises(ValueError, match="threshold scores first"):
        group_metrics([0, 1], [0.2, 0.9], ["a", "b"])
    with pytest.raises(ValueError, match="no negative examples"):
        equal_fpr_thresholds([0.2, 0.9, 0.4], [1, 1, 0], ["a", "a", "b"])
    with pytest.raises(ValueError, match=r"No threshold for groups \['c'\]"):
        apply_thresholds([0.5], ["c"], {"a": 0.5})


def _metrics(counts: dict[str, tuple[int, int, int, int]]):
    ys, ps, gs = [], [], []
    for g, c in counts.items():
        y, p = _labels(*c)
        ys.append(y), ps.append(p), gs.append(np.full(len(y), g))
    return group_metrics(np.concatenate(ys), np.concatenate(ps), np.concatenate(gs))


def test_small_groups_are_named_by_their_scarcest_class():
    m = _metrics({"big": (60, 20, 60, 40), "few_negatives": (50, 5, 10, 50), "tiny": (3, 1, 4, 2)})
    flagged = small_groups(m, min_count=20)
    assert set(flagged) == {"few_negatives", "tiny"}
    assert flagged["few_negatives"] == "15 negatives, 100 positives"
    assert small_groups(m, min_count=6) == {"tiny": "5 negatives, 5 positives"}
    assert small_groups(m, min_count=5) == {}


def test_tradeoff_reports_the_gaps_and_overall_rates_before_and_after():
    before = _metrics({"a": (40, 10, 30, 20), "b": (5, 15, 70, 10)})
    after = _metrics({"a": (45, 5, 35, 15), "b": (5, 5, 80, 10)})
    t = tradeoff(before, after)
    assert list(t.index) == ["one threshold (0.5)", "per-group thresholds", "change"]
    assert t.loc["one threshold (0.5)", "fpr_gap"] == pytest.approx(abs(10 / 40 - 15 / 85))
    assert t.loc["per-group thresholds", "accuracy"] == pytest.approx((45 + 35 + 5 + 80) / 200)
    assert t.loc["change", "fnr"] == pytest.approx(
        t.loc["per-group thresholds", "fnr"] - t.loc["one threshold (0.5)", "fnr"]
    )
