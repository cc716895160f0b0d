"""Metric regression checks against a stored baseline (dlnb.lifecycle.regression)."""

from __future__ import annotations

import json

import pytest

from dlnb.lifecycle.regression import (
    MetricRegression,
    _is_higher_better,
    _read_baseline,
    _write_baseline,
    check_metrics,
)


@pytest.fixture
def baseline(tmp_path):
    path = tmp_path / "baselines" / "model.json"
    _write_baseline(path, {"accuracy": 0.90, "val_loss": 0.30}, how="unit test")
    return path


def test_the_direction_comes_from_the_name():
    assert _is_higher_better("accuracy") and _is_higher_better("macro_f1")
    assert _is_higher_better("roc_auc") and _is_higher_better("throughput")
    for name in ("loss", "val_loss", "test-error", "rmse", "p50_ms", "duration_s", "ECE"):
        assert not _is_higher_better(name), name


def test_a_baseline_records_the_metrics_and_how_and_when(baseline):
    stored = _read_baseline(baseline)
    assert stored["metrics"] == {"accuracy": 0.9, "val_loss": 0.3}
    assert stored["measured"]["how"] == "unit test" and stored["measured"]["when"][:2] == "20"
    assert "torch" in stored["measured"]["versions"]


def test_within_tolerance_or_better_passes(baseline):
    check = check_metrics({"accuracy": 0.895, "val_loss": 0.305}, baseline)
    assert check.passed and [r["verdict"] for r in check.rows] == ["ok", "ok"]
    check = check_metrics({"accuracy": 0.95, "val_loss": 0.2}, baseline)
    assert [r["verdict"] for r in check.rows] == ["better", "better"]
    assert "val_loss" in check.table() and ">= 0.89" in check.table()


@pytest.mark.parametrize(
    "now, bad",
    [
        ({"accuracy": 0.88, "val_loss": 0.30}, "accuracy"),
        ({"accuracy": 0.9, "val_loss": 0.32}, "val_loss"),
    ],
)
def test_a_regression_in_the_bad_direction_fails_with_the_table(baseline, now, bad):
    with pytest.raises(MetricRegression) as e:
        check_metrics(now, baseline)
    text = str(e.value)
    assert "metric" in text and "baseline" in text and "allowed" in text and "verdict" in text
    line = next(row for row in text.splitlines() if row.startswith(bad))
    assert "REGRESSION" in line and "--dlnb-update-baselines" in text
    assert isinstance(e.value, AssertionError)


def test_exactly_at_the_tolerance_passes_despite_rounding(tmp_path):
    _write_baseline(tmp_path / "b.json", {"accuracy": 0.8})
    assert 0.8 - 0.1 > 0.7  # what float arithmetic gives
    assert check_metrics({"accuracy": 0.7}, tmp_path / "b.json", tolerance=0.1).passed
    with pytest.raises(MetricRegression):
        check_metrics({"accuracy": 0.6999}, tmp_path / "b.json", tolerance=0.1)


def test_tolerance_and_direction_can_be_set_per_metric(baseline):
    check_metrics({"accuracy": 0.85, "val_loss": 0.3}, baseline, tolerance={"accuracy": 0.06})
    with pytest.raises(MetricRegression, match="val_loss"):
        check_metrics(
            {"accuracy": 0.9, "val_loss": 0.25}, baseline, higher_is_better={"val_loss": True}
        )


def test_missing_new_and_non_finite_metrics(baseline):
    with pytest.raises(MetricRegression, match="MISSING"):
        check_metrics({"accuracy": 0.9}, baseline)
    with pytest.raises(MetricRegression, match="REGRESSION"):
        check_metrics({"accuracy": float("nan"), "val_loss": 0.3}, baseline)
    check = check_metrics({"accuracy": 0.9, "val_loss": 0.3, "f1": 0.7}, baseline)
    assert check.rows[-1]["verdict"] == "new (not in baseline)"


def test_a_missing_baseline_says_how_to_create_it_and_update_writes_it(tmp_path):
    path = tmp_path / "none.json"
    with pytest.raises(MetricRegression, match=r"No metric baseline .*--dlnb-update-baselines"):
        check_metrics({"accuracy": 0.9}, path)
    with pytest.raises(MetricRegression, match="update=True"):
        check_metrics({"accuracy": 0.9}, path)
    check = check_metrics({"accuracy": 0.9}, path, update=True, how="first run")
    assert check.updated and "written to" in str(check)
    assert json.loads(path.read_text())["measured"]["how"] == "first run"
    assert check_metrics({"accuracy": 0.9}, path).passed
    path.write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(ValueError, match="not a dlnb metric baseline"):
        check_metrics({"accuracy": 0.9}, path)
