"""`_measure_fit` (throughput, memory and accuracy of one run) and `compare_techniques` (interleaved,
rotated rounds, each run against the baseline of its own round)."""

import math
from dataclasses import replace

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from scipy import stats as scipy_stats
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders
from dlnb.models import MLP
from dlnb.train import loop
from dlnb.train.config import TrainConfig
from dlnb.train.measure import (
    _measure_fit,
    _rotated_orders,
    _speed_verdict,
    compare_techniques,
    describe_speedups,
    plot_speedups,
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
    result = _measure_fit(
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
    _measure_fit(
        tiny_mlp(),
        _toy_loaders(),
        TrainConfig(epochs=1, device="cpu", progress=False),
    )
    assert calls == ["cpu"]  # not again by fit, nor by evaluate


def test_rotated_orders_put_every_technique_once_in_every_position():
    orders = _rotated_orders(["a", "b", "c"], 4)
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
    )  # the same ratio every round: no spread, so the interval is the point
    assert summary.loc["fast", "verdict"] == "faster"
    assert summary.loc["base", "verdict"] == "baseline"
    assert summary.loc["fast", "accuracy_change"] == pytest.approx(0.005)
    assert summary.loc["same", "rounds"] == 3


def test_compare_techniques_checks_its_baseline_and_rounds():
    techniques = {"base": ("base", TrainConfig(device="cpu"))}
    with pytest.raises(ValueError, match="'other' is not one of"):
        compare_techniques(tiny_mlp, techniques, baseline="other", log=None)
    with pytest.raises(ValueError, match="at least one round"):
        compare_techniques(tiny_mlp, techniques, rounds=0, log=None)


def test_speed_verdict_reads_the_interval():
    assert _speed_verdict(1.02, 1.3) == "faster"
    assert _speed_verdict(0.5, 0.97) == "slower"
    assert _speed_verdict(0.9, 1.1) == "within noise"
    assert _speed_verdict(1.0, 1.4) == "within noise"  # the interval reaches 1
    assert _speed_verdict(0.0, float("inf")) == "unresolved"  # one round: no interval


def test_speedups_are_geometric_means_with_t_intervals_over_rounds():
    frame = _frame(
        {
            "base": [1.0] * 5,
            "fast": [1.2, 1.1, 1.3, 1.15, 1.25],
            "noisy": [0.7, 1.4, 0.9, 1.3, 1.0],
        },
        {"base": [0.90] * 5, "fast": [0.90] * 5, "noisy": [0.90] * 5},
    )
    summary = summarise_speedups(frame)
    logs = np.log([1.2, 1.1, 1.3, 1.15, 1.25])
    half = scipy_stats.t.ppf(0.975, 4) * logs.std(ddof=1) / np.sqrt(5)
    fast = summary.loc["fast"]
    assert fast["speedup"] == pytest.approx(np.exp(logs.mean()))
    assert [fast["speedup_low"], fast["speedup_high"]] == pytest.approx(
        np.exp([logs.mean() - half, logs.mean() + half])
    )
    assert fast["verdict"] == "faster" and summary.loc["noisy", "verdict"] == "within noise"
    slow = summarise_speedups(
        _frame({"base": [1.0] * 3, "s": [0.8, 0.85, 0.75]}, {"base": [0.9] * 3, "s": [0.9] * 3})
    )
    assert slow.loc["s", "verdict"] == "slower"


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


def test_describe_speedups_writes_every_number_and_word_from_the_summary():
    frame = _frame(
        {"base": [1.0] * 4, "fast": [1.25, 0.8, 1.1, 0.9], "faster": [1.3, 1.2, 1.25, 1.35]},
        {
            "base": [0.90, 0.92, 0.91, 0.90],
            "fast": [0.89, 0.92, 0.91, 0.90],
            "faster": [0.91, 0.92, 0.90, 0.91],
        },
    )
    summary = summarise_speedups(frame, band=0.02)
    text = describe_speedups(summary, labels={"fast": "the fast one"}, where="this CPU", band=0.02)
    fast, faster = summary.loc["fast"], summary.loc["faster"]
    assert (
        f"**the fast one** is **within noise** (this run cannot tell it from the baseline) on "
        f"this CPU: {fast['speedup']:.2f}x (95 % CI {fast['speedup_low']:.2f}x to "
        f"{fast['speedup_high']:.2f}x) the baseline's images/s over 4 rounds" in text
    )
    assert f"**faster** is **faster** on this CPU: {faster['speedup']:.2f}x" in text
    assert "**base** is the baseline: accuracy 0.907 on average, 0.900 to 0.920 over 4" in text
    assert "**Speed on this CPU**: faster: faster; within noise: the fast one." in text
    assert "slower" not in text.split("**Speed")[1]
    assert "every technique keeps the baseline's accuracy" in text and "above -0.02" in text


def test_describe_speedups_says_slower_plainly_and_when_accuracy_is_lost_or_unshown():
    frame = _frame(
        {"base": [1.0] * 4, "amp": [0.8, 0.82, 0.79, 0.81], "accum": [1.0, 1.1, 0.9, 1.0]},
        {
            "base": [0.90, 0.91, 0.90, 0.91],
            "amp": [0.80, 0.83, 0.81, 0.80],
            "accum": [0.90, 0.86, 0.93, 0.91],
        },
    )
    text = describe_speedups(
        summarise_speedups(frame, band=0.02),
        band=0.02,
        skipped={"compile": "compiling takes too long on a CPU"},
    )
    assert "**amp** is **slower** on this machine: 0.80x" in text
    assert "slower: amp; within noise: accum" in text
    assert "amp costs accuracy (95 % CI" in text
    assert "accum is unresolved in this run: its 95 % CI" in text and "reaches below -0.02" in text
    assert "**compile** was not run: compiling takes too long on a CPU." in text
    both = describe_speedups(
        summarise_speedups(frame), skipped={"compile": "slow", "all_together": "slow"}
    )
    assert "**compile** and **all_together** were not run: slow." in both


def test_skipped_techniques_and_the_scope_of_the_verdicts():
    from dlnb.train.measure import skipped_techniques, speed_scope

    assert set(skipped_techniques("cpu", smoke=True)) == {"compile", "all_together"}
    assert "torch.compile" in skipped_techniques("cpu", smoke=True)["compile"]
    assert skipped_techniques("cuda", smoke=True) == {} == skipped_techniques("cpu", smoke=False)
    cpu = speed_scope("cpu", resident_gate=1.5, band=0.005)
    assert "This run is on a CPU" in cpu and "an expectation, not a finding of this run" in cpu
    assert "at least 1.5x the DataLoader's images/s" in cpu and "at most 0.005 below" in cpu
    gpu = speed_scope("cuda")
    assert "This run is on a GPU" in gpu and "expectation" not in gpu


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


def test_accuracy_verdict_is_one_sided():
    from dlnb import claims
    from dlnb.train.measure import accuracy_verdict

    def change(diffs):
        return claims.paired_effect(np.array(diffs) + 0.9, np.full(len(diffs), 0.9))

    assert accuracy_verdict(change([0.01, 0.02, 0.015, 0.012]), 0.02) == "keeps"  # a gain keeps it
    assert accuracy_verdict(change([-0.005, -0.004, -0.006, -0.005]), 0.02) == "keeps"  # small loss
    assert accuracy_verdict(change([-0.05, -0.04, -0.06, -0.05]), 0.02) == "costs"
    assert accuracy_verdict(change([-0.05, 0.04, -0.06, 0.05]), 0.02) == "unresolved"
    assert accuracy_verdict(change([-0.01]), 0.02) == "unresolved"  # one round: no interval
