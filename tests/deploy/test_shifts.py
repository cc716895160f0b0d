"""Simulated covariate and label shift, the severity sweep and per-group alerts (dlnb.deploy.shifts)."""

from __future__ import annotations

import numpy as np
import pytest

from dlnb.deploy import monitor, shifts


def test_degrade_is_the_identity_at_severity_zero_and_dims_in_pixel_space():
    rng = np.random.default_rng(0)
    mean, std = 0.1307, 0.3081
    pixels = rng.uniform(size=(4, 1, 8, 8))
    x = ((pixels - mean) / std).astype(np.float32)
    same = shifts.degrade(x, 0.0, rng, mean=mean, std=std)
    assert np.allclose(same, x, atol=1e-6)
    out = shifts.degrade(x, 1.0, np.random.default_rng(1), mean=mean, std=std, noise=0.0)
    assert np.allclose(out * std + mean, 0.5 * pixels, atol=1e-6)  # half the contrast, no noise
    noisy = shifts.degrade(x, 1.0, np.random.default_rng(1), mean=mean, std=std) * std + mean
    assert noisy.min() >= -1e-6 and noisy.max() <= 1 + 1e-6  # clipped to valid pixels
    with pytest.raises(ValueError, match="severity"):
        shifts.degrade(x, 3.0, rng)


def test_split_windows_cuts_every_feature_alike():
    f = {"a": np.arange(10), "b": np.arange(10) * 2}
    windows = shifts.split_windows(f, 4)
    assert [len(w["a"]) for w in windows] == [4, 4, 2]
    assert windows[1]["b"].tolist() == [8, 10, 12, 14]
    with pytest.raises(ValueError, match="one value per sample"):
        shifts.split_windows({"a": np.arange(3), "b": np.arange(4)}, 2)


def test_prior_shift_indices_follow_the_priors_and_keep_each_class_intact():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 1000)
    priors = [0.7, 0.1, 0.1, 0.1]
    idx = shifts.prior_shift_indices(labels, priors, 1200, rng)
    assert len(idx) == len(set(idx.tolist())) == 1200  # without replacement
    freq = np.bincount(labels[idx], minlength=4) / 1200
    assert freq == pytest.approx(priors, abs=0.03)
    with pytest.raises(ValueError, match="sum to 1"):
        shifts.prior_shift_indices(labels, [0.5, 0.1, 0.1, 0.1], 10, rng)
    with pytest.raises(ValueError, match="class 0 needs"):
        shifts.prior_shift_indices(labels, [1.0, 0, 0, 0], 1500, rng)


def _make_stream(severity: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(loc=severity if w >= 3 else 0.0, size=300)} for w in range(8)]


def test_severity_sweep_measures_delay_false_alarms_and_the_noise_floor():
    rng = np.random.default_rng(100)
    reference = {"x": rng.normal(size=2000)}
    sweep = shifts.severity_sweep(reference, _make_stream, [0.0, 0.02, 1.0], [0, 1, 2], shift_at=3)
    assert len(sweep) == 9 and set(sweep.seed) == {0, 1, 2}
    large = sweep[sweep.severity == 1.0]
    assert (large.delay == 0).all() and (large.alert_rate_after == 1.0).all()
    assert sweep[sweep.severity == 0.0].delay.isna().all()  # no shift: nothing to detect
    assert sweep.psi_max[sweep.severity == 1.0].min() > sweep.psi_max[sweep.severity == 0.0].max()
    rate, windows = shifts.false_alarm_rate(sweep)
    assert windows == 9 * 3 + 3 * 5 and rate < 0.2  # a few chance alerts at most
    summary = shifts.summarise_sweep(sweep)
    assert summary.loc[1.0, "detected"] == "3/3" and summary.loc[0.0, "detected"] == "0/3"
    assert summary.loc[1.0, "shifted_windows"] == 15 and summary.loc[1.0, "alerts"] == 15
    low, high = shifts.rate_interval(15, 15)
    assert summary.loc[1.0, ["alert_rate_low", "alert_rate_high"]].tolist() == pytest.approx(
        [low, high]
    )
    fig, (left, right) = shifts.plot_sweep(sweep)
    assert len(right.get_lines()) == 3  # PSI, KS and the threshold


def test_false_alarm_rate_counts_alerts_on_clean_windows():
    rng = np.random.default_rng(5)
    reference = {"x": rng.normal(size=2000)}

    def always_shifted(severity: float, seed: int) -> list[dict]:
        r = np.random.default_rng(seed)
        return [{"x": r.normal(loc=2.0, size=300)} for _ in range(4)]  # shifted from window 0 on

    sweep = shifts.severity_sweep(reference, always_shifted, [0.0], [0], shift_at=2)
    rate, windows = shifts.false_alarm_rate(sweep)
    assert (rate, windows) == (1.0, 4)  # at severity 0 every alert is a false alarm


def test_group_alerts_say_which_group_of_features_alerted():
    rng = np.random.default_rng(7)
    reference = {"a": rng.normal(size=2000), "b": rng.normal(size=2000)}
    windows = [
        {"a": rng.normal(size=300), "b": rng.normal(loc=1.0 if w else 0.0, size=300)}
        for w in range(3)
    ]
    stream = monitor.monitor_stream(reference, windows)
    groups = shifts.group_alerts(stream, {"inputs": ["a"], "outputs": ["b"]})
    assert groups.inputs.tolist() == [False] * 3
    assert groups.outputs.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="names no monitored feature"):
        shifts.group_alerts(stream, {"nothing": ["c"]})


def test_rate_interval_is_wilson_and_sound_at_the_ends():
    low, high = shifts.rate_interval(0, 108)
    assert low == 0.0 and high == pytest.approx(3.8415 / (108 + 3.8415), rel=1e-3)
    low, high = shifts.rate_interval(24, 24)
    assert high == 1.0 and 0.85 < low < 0.87
    low, high = shifts.rate_interval(12, 24)
    assert low < 0.5 < high and high - 0.5 == pytest.approx(0.5 - low)
    assert shifts.rate_interval(0, 0) == (0.0, 1.0)
