"""`measure_fit` (throughput, memory and accuracy of one run) and `compare_techniques` (interleaved,
rotated rounds, each run against the baseline of its own round)."""

import math
from dataclasses import replace

import pytest
from matplotlib.collections import PathCollection
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders
from dlnb.models import MLP
from dlnb.train import loop
from dlnb.train.config import TrainConfig
from dlnb.train.measure import (
    compare_techniques,
    describe_speedups,
    measure_fit,
    plot_speedups,
    rotated_orders,
    speed_verdict,
    summarise_speedups,
)
from tests.train.helpers import toy_data

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_mlp():
    return MLP(8, hidden=(8,), out_features=3)


def _toy_loaders(batch_size=16):
    x, y, xv, yv = toy_data()
    valid = DataLoader(TensorDataset(xv, yv), batch_size=16)
    return Loaders(DataLoader(TensorDataset(x, y), batch_size=batch_size), valid, valid)


def test_measure_fit_reports_speed_and_accuracy_and_no_memory_off_cuda():
    result = measure_fit(
        tiny_mlp(),
        _toy_loaders(),
        TrainConfig(epochs=2, device="cpu", progress=False),
    )
    assert result["images_per_s"] == pytest.approx(2 * 64 / result["seconds"])
    assert math.isnan(result["peak_memory_mib"])  # process RSS is not what a technique needs
    assert 0 <= result["valid_accuracy"] <= 1
    assert result["test_accuracy"] == result["valid_accuracy"]  # same data, same final weights


def test_measure_fit_resolves_the_device_once(monkeypatch):
    calls = []
    real = loop.pick_device
    monkeypatch.setattr(loop, "pick_device", lambda device: calls.append(device) or real(device))
    measure_fit(
        tiny_mlp(),
        _toy_loaders(),
        TrainConfig(epochs=1, device="cpu", progress=False),
    )
    assert calls == ["cpu"]  # not again by fit, nor by evaluate


def test_rotated_orders_put_every_technique_once_in_every_position():
    orders = rotated_orders(["a", "b", "c"], 4)
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    for position in range(3):
        assert sorted(order[position] for order in orders[:3]) == ["a", "b", "c"]


class FakeMeasure:
    """A `measure` whose speed is the round's machine speed times the technique's factor.

    The "loaders" of a technique are its name, so the calls say which technique ran when."""

    def __init__(self, machine_speed, factors):
        self.machine_speed, self.factors, self.calls = machine_speed, factors, []

    def __call__(self, model, loaders, config):
        self.calls.append((loaders, config))
        speed = self.machine_speed[config.seed] * self.factors[loaders]
        return {"images_per_s": speed, "test_accuracy": 0.9 + 0.01 * self.factors[loaders]}


def test_compare_techniques_interleaves_rotates_and_reseeds_each_round():
    fake = FakeMeasure({10: 100.0, 11: 90.0, 12: 80.0}, {"base": 1.0, "fast": 2.0, "slow": 0.5})
    config = TrainConfig(epochs=3, device="cpu", progress=False)
    techniques = {name: (name, config) for name in ("base", "fast", "slow")}
    frame = compare_techniques(
        tiny_mlp, techniques, rounds=3, seed=10, warmup_steps=2, measure=fake, log=None
    )
    warmups, runs = fake.calls[:3], fake.calls[3:]
    assert [loaders for loaders, _ in warmups] == ["base", "fast", "slow"]
    assert all(c.epochs == 1 and c.max_steps_per_epoch == 2 for _, c in warmups)
    assert [loaders for loaders, _ in runs] == [
        *("base", "fast", "slow"),
        *("fast", "slow", "base"),
        *("slow", "base", "fast"),
    ]
    assert [c.seed for _, c in runs] == [10] * 3 + [11] * 3 + [12] * 3
    assert all(c.epochs == 3 for _, c in runs)  # the timed runs are the configured ones
    assert list(frame["round"]) == [0] * 3 + [1] * 3 + [2] * 3
    assert list(frame["position"]) == [0, 1, 2] * 3
    assert len(frame) == 9  # the warm-up runs are not in the frame


def test_each_speedup_is_against_the_baseline_of_the_same_round():
    # the machine is twice as fast in round 1 and four times slower in round 2: a pooled
    # baseline would turn that drift into spread, the same round's baseline cancels it
    fake = FakeMeasure({0: 100.0, 1: 200.0, 2: 25.0}, {"base": 1.0, "fast": 1.5, "same": 1.0})
    config = TrainConfig(device="cpu", progress=False)
    techniques = {name: (name, config) for name in ("base", "fast", "same")}
    frame = compare_techniques(
        tiny_mlp, techniques, rounds=3, measure=fake, warmup_steps=0, log=None
    )
    fast = frame[frame["technique"] == "fast"]
    assert list(fast["speedup"]) == pytest.approx([1.5, 1.5, 1.5])
    assert list(frame.loc[frame["technique"] == "base", "speedup"]) == [1.0, 1.0, 1.0]
    summary = summarise_speedups(frame)
    assert summary.loc["fast", ["speedup_low", "speedup_high"]].tolist() == pytest.approx(
        [1.5, 1.5]
    )
    assert summary.loc["fast", "verdict"] == "faster in every round"
    assert summary.loc["base", "verdict"] == "baseline"
    assert summary.loc["fast", "accuracy_change"] == pytest.approx(0.005)
    assert summary.loc["same", "rounds"] == 3


def test_compare_techniques_checks_its_baseline_and_rounds():
    techniques = {"base": ("base", TrainConfig(device="cpu"))}
    with pytest.raises(ValueError, match="'other' is not one of"):
        compare_techniques(tiny_mlp, techniques, baseline="other", log=None)
    with pytest.raises(ValueError, match="at least one round"):
        compare_techniques(tiny_mlp, techniques, rounds=0, log=None)


def test_speed_verdict_says_within_noise_when_the_spread_covers_one():
    assert speed_verdict(1.02, 1.3) == "faster in every round"
    assert speed_verdict(0.5, 0.97) == "slower in every round"
    assert speed_verdict(0.9, 1.1) == "within noise"
    assert speed_verdict(1.0, 1.4) == "within noise"  # one round where it was no faster


def _frame(speedups, accuracies):
    """A `compare_techniques`-like frame from per-technique lists of per-round values."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"round": r, "technique": name, "speedup": speed, "test_accuracy": acc}
            for name in speedups
            for r, (speed, acc) in enumerate(zip(speedups[name], accuracies[name], strict=True))
        ]
    )


def test_describe_speedups_writes_every_number_from_the_summary():
    frame = _frame(
        {"base": [1.0, 1.0], "fast": [1.25, 0.8], "faster": [1.3, 1.1]},
        {"base": [0.90, 0.92], "fast": [0.89, 0.92], "faster": [0.91, 0.93]},
    )
    text = describe_speedups(summarise_speedups(frame), labels={"fast": "the fast one"})
    assert "**the fast one**: 1.02x the baseline's images/s" in text  # median of 1.25 and 0.8
    assert "0.80x to 1.25x): **within noise**; accuracy 0.905, -0.005" in text
    assert "**base** is the baseline: accuracy 0.910 on average, 0.900 to 0.920 over 2" in text
    assert (
        "faster in every round: faster; slower in every round: none; within noise: the fast" in text
    )
    assert "spans 0.020 over the rounds' seeds. The largest mean drop, 0.005 (the fast one)" in text
    assert "is within that seed noise" in text


def test_describe_speedups_says_when_a_technique_costs_accuracy():
    frame = _frame(
        {"base": [1.0, 1.0], "amp": [2.0, 2.1]},
        {"base": [0.90, 0.91], "amp": [0.80, 0.83]},
    )
    text = describe_speedups(summarise_speedups(frame))
    assert "**amp**: 2.05x" in text and "faster in every round: amp" in text
    assert "amp loses 0.090 on average, more than that seed noise: it costs accuracy" in text


def test_compare_techniques_runs_real_fits_with_tiny_models():
    config = TrainConfig(epochs=1, device="cpu", progress=False)
    techniques = {
        "baseline": (_toy_loaders(16), config),
        "grad_accum": (_toy_loaders(8), replace(config, grad_accum=2)),
    }
    frame = compare_techniques(tiny_mlp, techniques, rounds=2, log=None)
    assert len(frame) == 4 and set(frame["technique"]) == {"baseline", "grad_accum"}
    assert (frame["images_per_s"] > 0).all() and frame["test_accuracy"].between(0, 1).all()
    assert list(frame.loc[frame["technique"] == "baseline", "speedup"]) == [1.0, 1.0]


def test_a_warm_up_of_none_runs_one_whole_epoch_per_technique():
    fake = FakeMeasure({0: 100.0}, {"base": 1.0, "other": 1.0})
    config = TrainConfig(epochs=3, max_steps_per_epoch=5, device="cpu", progress=False)
    techniques = {name: (name, config) for name in ("base", "other")}
    compare_techniques(tiny_mlp, techniques, rounds=1, warmup_steps=None, measure=fake, log=None)
    warmups = fake.calls[:2]
    assert all(c.epochs == 1 and c.max_steps_per_epoch is None for _, c in warmups)
    assert len(fake.calls) == 4


def test_plot_speedups_draws_one_dot_per_run_and_panel():
    fake = FakeMeasure({0: 100.0, 1: 80.0, 2: 120.0}, {"base": 1.0, "fast": 1.5})
    config = TrainConfig(device="cpu", progress=False)
    techniques = {name: (name, config) for name in ("base", "fast")}
    frame = compare_techniques(
        tiny_mlp, techniques, rounds=3, measure=fake, warmup_steps=0, log=None
    )
    fig = plot_speedups(frame, labels={"fast": "the fast one"})
    speed, acc = fig.axes
    assert [t.get_text() for t in speed.get_yticklabels()] == ["base", "the fast one"]
    scatters = {ax: [c for c in ax.collections if isinstance(c, PathCollection)] for ax in fig.axes}
    assert [sum(len(c.get_offsets()) for c in scatters[ax]) for ax in (speed, acc)] == [6, 6]
    dots = scatters[speed][1].get_offsets()  # the rounds of the second technique
    assert sorted(dots[:, 0].tolist()) == pytest.approx([1.5, 1.5, 1.5])
    assert "3 interleaved rounds" in fig.get_suptitle()
