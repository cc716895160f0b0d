"""Drift statistics, alerts over a stream, features and the plot (dlnb.monitor)."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.deploy import monitor


def test_psi_matches_a_hand_computed_value():
    reference = np.linspace(0, 1, 1000)  # two quantile bins: below and above 0.5
    live = np.r_[np.full(750, 0.25), np.full(250, 0.75)]
    expected = (0.75 - 0.5) * np.log(0.75 / 0.5) + (0.25 - 0.5) * np.log(0.25 / 0.5)
    assert monitor.psi(reference, live, bins=2) == pytest.approx(expected)


def test_psi_is_near_zero_without_drift_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    same = monitor.psi(reference, rng.normal(size=5000))
    shifts = [monitor.psi(reference, rng.normal(loc=s, size=5000)) for s in (0.25, 0.5, 1.0)]
    assert same < 0.01
    assert shifts == sorted(shifts) and shifts[0] > same and shifts[-1] > 0.5


def test_categorical_psi_handles_classes_missing_from_the_reference():
    reference = np.array([0] * 50 + [1] * 50)
    assert monitor.categorical_psi(reference, reference[::-1]) == pytest.approx(0.0)
    value = monitor.categorical_psi(reference, np.array([0] * 50 + [2] * 50))
    assert np.isfinite(value) and value > 1.0


def test_ks_separates_same_from_shifted():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=2000)
    stat_same, p_same = monitor.ks(reference, rng.normal(size=500))
    stat_shift, p_shift = monitor.ks(reference, rng.normal(loc=0.5, size=500))
    assert p_same > 0.01 and p_shift < 1e-6 and stat_shift > stat_same


def test_drift_report_flags_only_the_shifted_feature():
    rng = np.random.default_rng(2)
    reference = {
        "a": rng.normal(size=2000),
        "b": rng.uniform(size=2000),
        "label": rng.integers(0, 3, 2000),
    }
    live = {
        "a": rng.normal(size=500),
        "b": rng.uniform(size=500) + 0.3,
        "label": rng.integers(0, 3, 500),
    }
    report = monitor.drift_report(reference, live, categorical=["label"]).set_index("feature")
    assert report.alert.to_dict() == {"a": False, "b": True, "label": False}
    assert "PSI" in report.reason["b"] and "KS" in report.reason["b"]
    assert np.isnan(report.ks_pvalue["label"])  # KS is for continuous features only


def test_drift_report_explains_bad_input():
    with pytest.raises(ValueError, match="only one"):
        monitor.drift_report({"a": np.zeros(10)}, {"b": np.zeros(10)})
    with pytest.raises(ValueError, match="NaN"):
        monitor.psi(np.zeros(10), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="1-D"):
        monitor.ks(np.zeros((3, 3)), np.zeros(3))


def test_a_shift_part_way_through_a_stream_is_detected_in_its_first_window():
    rng = np.random.default_rng(3)
    reference = {"x": rng.normal(size=2000), "y": rng.exponential(size=2000)}
    windows = [
        {"x": rng.normal(loc=0.6 if w >= 6 else 0.0, size=300), "y": rng.exponential(size=300)}
        for w in range(12)
    ]
    stream = monitor.monitor_stream(reference, windows)
    assert monitor.first_alert(stream) == 6
    alerts = monitor.window_alerts(stream)
    assert alerts.alert.tolist() == [False] * 6 + [True] * 6
    assert set(alerts.features[alerts.alert]) == {"x"}
    assert monitor.first_alert(stream.assign(alert=False)) is None
    fig, ax = monitor.plot_drift(stream, shift_at=6)
    assert len(ax.get_lines()) == 2 + 2  # two features, the threshold and the shift marker
    with_label = stream.assign(ks_statistic=lambda d: d.ks_statistic.where(d.feature == "y"))
    _, ax = monitor.plot_drift(with_label, "ks_statistic", threshold=None)
    (line,) = ax.get_lines()  # "x" has no KS values here: skipped, and "y" keeps its colour
    assert line.get_label() == "y" and line.get_color() == "C1"


def test_image_features_locate_the_ink():
    images = np.zeros((2, 1, 28, 28))
    images[0, 0, 5, 20] = 1.0
    images[1, 0, 10:14, 3:7] = 0.5
    f = monitor.image_features(images)
    assert f["centre_row"].tolist() == pytest.approx([5, 11.5])
    assert f["centre_col"].tolist() == pytest.approx([20, 4.5])
    assert f["ink_fraction"].tolist() == pytest.approx([1 / 784, 16 / 784])
    assert f["mean"][1] == pytest.approx(8 / 784)
    with pytest.raises(ValueError, match="batch of images"):
        monitor.image_features(np.zeros(5))


def test_prediction_features_are_softmax_class_and_confidence():
    f = monitor.prediction_features(np.array([[0.0, np.log(3.0)], [5.0, 5.0]]))
    assert f["predicted_class"].tolist() == [1, 0]
    assert f["confidence"].tolist() == pytest.approx([0.75, 0.5])
