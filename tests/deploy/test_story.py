"""dlnb.deploy.story: each sentence of the deployment lesson follows what was measured."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlnb.deploy.bench import LatencyRatio
from dlnb.deploy.shifts import rate_interval
from dlnb.deploy.story import (
    describe_batching,
    describe_label_shift,
    describe_runtimes,
    describe_stream,
    describe_sweep,
    drift_limitations,
    label_shift_rates,
    rate_with_interval,
    sweep_rates,
)

QUANT = {
    "size_ratio": 3.4,
    "accuracy_drop": 0.0002,
    "accuracy_change_low": -0.0011,
    "accuracy_change_high": 0.0007,
    "n": 10_000,
}


def _ratio(batch, ratio, low, high, baseline="onnxruntime", candidate="onnxruntime int8"):
    return LatencyRatio(baseline, candidate, batch, ratio, low, high, 5)


def test_runtimes_are_described_by_their_verdicts():
    int8 = {
        1: _ratio(1, 0.6, 0.5, 0.7),
        16: _ratio(16, 0.8, 0.7, 0.95),
        64: _ratio(64, 1.0, 0.9, 1.1),
        256: _ratio(256, 1.3, 1.1, 1.5),
    }
    text = describe_runtimes(
        _ratio(1, 3.0, 2.5, 3.5, "eager", "onnxruntime"),
        _ratio(256, 1.1, 0.9, 1.3, "eager", "onnxruntime"),
        int8,
        QUANT,
    )
    assert "At batch 1, onnxruntime is **faster** than eager: 3.00x (95 % CI 2.50x to 3.50x" in text
    assert "At batch 256, onnxruntime and eager are **within noise**" in text
    assert (
        "**On this CPU, int8 is slower at batch 1, 16; faster at batch 256; within noise at batch 64.**"
        in text
    )
    assert "a file 3.4x smaller" in text and "-0.02 points" in text and "-0.11 to +0.07" in text
    assert "within noise." in text
    slow = {b: _ratio(b, 0.5, 0.4, 0.6) for b in (1, 16)}
    lost = describe_runtimes(
        _ratio(1, 3.0, 2.5, 3.5),
        _ratio(256, 2, 1.5, 2.5),
        slow,
        {
            **QUANT,
            "accuracy_drop": 0.02,
            "accuracy_change_low": -0.03,
            "accuracy_change_high": -0.01,
        },
    )
    assert "int8 is slower at batch 1, 16.**" in lost and "a real loss." in lost


def test_batching_is_one_measurement_and_says_so():
    load = pd.DataFrame(
        {
            "throughput_rps": [400.0, 720.0],
            "p99_ms": [150.0, 90.0],
            "errors": [0, 0],
            "wrong": [0, 1],
        }
    )
    text = describe_batching(load)
    assert "1.80x the throughput in this one run, p99 90 ms; errors or wrong answers: 1" in text
    assert "no interval" in text


def test_the_single_stream_by_when_the_monitor_alerted():
    acc = np.array([0.95, 0.96, 0.94, 0.95, 0.7, 0.72])
    assert "in the first shifted window" in describe_stream(4, 4, 0, acc, 100)
    assert "no false alarm" in describe_stream(4, 4, 0, acc, 100)
    assert "first alerted 1 windows after" in describe_stream(5, 4, 2, acc, 100)
    assert "2 false alarm(s)" in describe_stream(5, 4, 2, acc, 100)
    missed = describe_stream(None, 4, 0, acc, 100)
    low, high = rate_interval(380, 400)  # four windows of 100 before the shift, 95 % right
    assert "never alerted" in missed
    assert f"0.950 (95 % CI {low:.3f} to {high:.3f}, 400 examples) before" in missed
    low, high = rate_interval(142, 200)
    assert f"to 0.710 (95 % CI {low:.3f} to {high:.3f}, 200 examples) after" in missed


def _summary(rates: dict[float, tuple[float, int, int]]) -> pd.DataFrame:
    from dlnb.deploy.shifts import rate_interval

    rows = {}
    for s, (mean_delay, alerts, windows) in rates.items():
        low, high = rate_interval(alerts, windows)
        rows[s] = {
            "mean_delay": mean_delay,
            "alert_rate_after": alerts / windows,
            "alert_rate_low": low,
            "alert_rate_high": high,
            "shifted_windows": windows,
            "psi_max": 0.05,
        }
    return pd.DataFrame(rows).T


def test_the_sweep_is_worded_by_its_intervals():
    summary = _summary(
        {
            0.0: (np.nan, 0, 24),
            0.025: (np.nan, 0, 24),
            0.05: (2.0, 10, 24),
            0.2: (0.0, 24, 24),
            1.0: (0.0, 24, 24),
        }
    )
    text = describe_sweep(summary, (0.0, 108), 0.025, 1.0, 0.0, 3)
    assert "0.0% of 108 clean windows alerted (false alarms; 95 % CI 0.0% to 3.4%)" in text
    assert "alerted in 0% of 24 shifted windows (95 % CI 0% to 14%): too rarely to count on" in text
    assert (
        "From severity 0.2 on, every shifted window alerted on every seed (24 of 24 at 0.2" in text
    )
    assert "at severity 0.05, 42% of shifted windows alerted" in text
    seen = _summary({0.025: (0.0, 20, 24), 1.0: (0.0, 24, 24)})
    assert "often enough that the monitor does see it" in describe_sweep(
        seen, (0.0, 50), 0.025, 1.0, 0.0, 3
    )
    unsure = _summary({0.025: (1.0, 4, 24), 1.0: (0.0, 20, 24)})
    text = describe_sweep(unsure, (0.02, 50), 0.025, 1.0, 2.0, 3)
    assert (
        "at a rate this run cannot pin down" in text
        and "No severity tried alerted in every" in text
    )


def _label_shift(inputs: float, predictions: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "shifted windows": [8, 8, 8],
            "inputs alert rate": [inputs] * 3,
            "predictions alert rate": [predictions] * 3,
            "labels (delayed) alert rate": [1.0] * 3,
            "largest input PSI": [0.21, 0.15, 0.12],
            "median largest input PSI": [0.06, 0.07, 0.05],
            "accuracy before": [0.93, 0.94, 0.92],
            "accuracy after": [0.91, 0.92, 0.905],
        }
    )


def test_label_shift_by_which_monitor_saw_it():
    text = describe_label_shift(_label_shift(0.0, 1.0), 0.0, 0.04, 0.2, -0.02, 200, 0.93)
    assert (
        "Over 3 seeds (24 shifted windows) the input monitor alerted in **0%** (95 % CI 0% to 14%)"
        in text
    )
    assert "the predicted-class monitor in **100%** (95 % CI 86% to 100%)" in text
    assert "The input monitor misses this shift" in text
    assert "Accuracy changed by -1.8 points (95 % CI" in text and "worse" in text
    seen = describe_label_shift(_label_shift(1.0, 1.0), 0.0, 0.04, 0.2, -0.02, 200, 0.93)
    assert "The input monitor sees this shift too" in seen
    unsure = describe_label_shift(_label_shift(0.25, 1.0), 0.0, 0.04, 0.2, -0.02, 200, 0.93)
    assert "this run cannot say" in unsure


def test_rates_for_recording_and_the_card():
    assert rate_with_interval(0, 108)["high"] < 0.05
    assert label_shift_rates(_label_shift(0.125, 1.0), "inputs alert rate")["rate"] == 0.125
    summary = _summary({0.2: (0.0, 24, 24)})
    assert sweep_rates(summary, 0.2)["low"] > 0.85
    lines = drift_limitations(np.array([0.95, 0.95, 0.7, 0.7]), 2, 0, 0.04, 2)
    assert "0.950 before, 0.700 after" in lines[1] and "alerted in 4% of such windows" in lines[2]
    assert "(2 CPUs, shared)" in lines[3]
