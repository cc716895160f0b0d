"""dlnb.experiments: the data-efficiency harness, its summary and its plot."""

import numpy as np
import pytest

from dlnb import experiments
from dlnb.data.loaders import per_class_subset


def test_data_efficiency_runs_every_method_size_and_seed():
    labels = np.array([0, 1] * 10)
    calls = []

    def method(indices, seed):
        calls.append((len(indices), seed))
        return {"accuracy": len(indices) / 20, "model": object(), "history": [seed]}

    frame = experiments.data_efficiency(
        {"m": method, "n": method}, labels, sizes=[2, None], seeds=[0, 1], log=None
    )
    assert len(frame) == 8 and sorted(set(calls)) == [(4, 0), (4, 1), (20, 0), (20, 1)]
    assert list(frame.columns) == ["method", "per_class", "n_train", "seed", "seconds", "accuracy"]
    assert frame.per_class.tolist() == [2] * 4 + [10] * 4  # None: the whole set, 10 per class
    assert (frame.seconds >= 0).all()
    table = experiments.summarise(frame)
    assert list(table.index) == [2, 10]
    assert table[("mean", "m")].tolist() == [0.2, 1.0]
    assert table[("std", "n")].tolist() == [0.0, 0.0]
    fig, ax = experiments.plot_data_efficiency(frame, chance=0.5)
    assert len(ax.get_lines()) == 3 and ax.get_xlabel() == "labelled examples per class"


def test_the_runs_see_nested_seeded_subsets_and_may_report_their_own_time():
    labels = np.repeat(np.arange(3), 10)
    seen = {}

    def method(indices, seed):
        seen[(len(indices), seed)] = set(indices.tolist())
        return {"accuracy": np.float32(0.5), "seconds": 7.0, "epochs": np.int64(3), "ok": True}

    frame = experiments.data_efficiency({"m": method}, labels, [1, 4], [5], log=None)
    assert seen[(3, 5)] <= seen[(12, 5)]  # the small subset is inside the large one
    assert seen[(12, 5)] == set(per_class_subset(labels, 4, seed=5).tolist())
    assert frame.seconds.tolist() == [7.0, 7.0] and frame.epochs.tolist() == [3, 3]
    assert "ok" not in frame and isinstance(frame.accuracy[0], float)


def test_kept_entries_ride_along_and_each_run_is_logged():
    lines = []

    def with_history(indices, seed):
        return {"accuracy": 1.0, "history": ("trained", seed)}

    def without(indices, seed):
        return {"accuracy": 0.0}

    frame = experiments.data_efficiency(
        {"net": with_history, "baseline": without},
        [0, 1, 0, 1],
        [1],
        [0, 1],
        keep=("history",),
        log=lines.append,
    )
    assert frame.history.tolist() == [("trained", 0), None, ("trained", 1), None]
    assert len(lines) == 4 and "net" in lines[0] and "1/class" in lines[0]
    assert "accuracy 1" in lines[0] and "seed 1" in lines[2]


def test_too_few_examples_of_a_class_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than 3"):
        experiments.data_efficiency({"m": lambda i, s: {}}, [0, 0, 1], [3], [0], log=None)


def test_the_plot_of_another_metric_can_use_a_log_scale():
    frame = experiments.data_efficiency(
        {"m": lambda i, s: {"train_seconds": float(len(i))}}, [0, 1] * 8, [1, 4], [0], log=None
    )
    fig, ax = experiments.plot_data_efficiency(frame, "train_seconds", logy=True, title="cost")
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "train seconds"
    assert ax.get_title() == "cost" and [t.get_text() for t in ax.get_xticklabels()] == ["1", "4"]
