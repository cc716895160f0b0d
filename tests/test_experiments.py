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


@pytest.mark.parametrize("headless", [False, True])
def test_progress_shows_a_bar_over_the_runs_only_in_a_live_notebook(monkeypatch, headless):
    import tqdm.auto

    bars = []
    monkeypatch.setattr(experiments, "is_headless", lambda: headless)
    monkeypatch.setattr("dlnb.runtime.is_headless", lambda: headless)
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda seq, **kw: bars.append(kw) or iter(seq))
    frame = experiments.data_efficiency(
        {"a": lambda i, s: {"accuracy": 1.0}, "b": lambda i, s: {"accuracy": 0.5}},
        [0, 1, 0, 1],
        [1],
        [0, 1, 2],
        log=None,
        progress=True,
    )
    assert len(frame) == 6
    assert bars == ([] if headless else [{"desc": "runs", "total": 6, "leave": True}])


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


def effect_rows(sizes: dict) -> list[dict]:
    """Rows of a data-efficiency frame: size -> method -> (test scores per seed, validation)."""
    rows = []
    for size, methods in sizes.items():
        for method, (per_seed, valid) in methods.items():
            rows += [
                {"method": method, "per_class": size, "seed": s, "test_accuracy": v,
                 "valid_accuracy": valid}
                for s, v in enumerate(per_seed)
            ]  # fmt: skip
    return rows


def test_best_effects_pick_each_best_on_validation_and_pair_them_over_seeds():
    import pandas as pd

    frame = pd.DataFrame(
        effect_rows(
            {
                # "b" has the best test mean but "a" the best validation: "a" is picked
                1: {"a": ((0.9, 0.8, 0.85), 0.9), "b": ((0.95, 0.95, 0.95), 0.5),
                    "x": ((0.5, 0.6, 0.55), 0.7), "y": ((0.4, 0.4, 0.4), 0.6)},
                4: {"a": ((0.8, 0.8, 0.8), 0.8), "b": ((0.9, 0.7, 0.8), 0.9),
                    "x": ((0.85, 0.75, 0.8), 0.8), "y": ((0.1, 0.1, 0.1), 0.1)},
            }
        )
    )  # fmt: skip
    effects = experiments.best_effects(frame, ["a", "b"], ["x", "y"], names={"a": "A"})
    assert list(effects) == [1, 4]
    one, four = effects[1], effects[4]
    assert (one.ours, one.baseline, one.n) == ("A", "x", 3)
    assert one.diff == pytest.approx(0.3) and one.verdict == "better"  # +0.4, +0.2, +0.3
    assert one.low == pytest.approx(0.3 - 4.302653 * 0.1 / 3**0.5, abs=1e-6)
    assert (four.ours, four.baseline) == ("b", "x") and four.diff == pytest.approx(0.0)
    assert four.verdict == "within noise"  # +0.05, -0.05, 0
    with pytest.raises(ValueError, match="no runs of \\['z'\\]"):
        experiments.best_effects(frame, ["a", "z"], ["x"])


def test_the_leak_summary_follows_the_verdict():
    import pandas as pd

    leaky = pd.DataFrame({"seed": range(4), "leaky": [0.8, 0.78, 0.82, 0.79],
                          "honest": [0.5, 0.48, 0.53, 0.49]})  # fmt: skip
    text = experiments.leak_summary(leaky)
    assert "leaky pipeline scores 0.797" in text and "never below 0.780" in text
    assert "95 % CI" in text and "Nothing was learned" in text
    level = leaky.assign(leaky=[0.5, 0.49, 0.52, 0.5])
    text = experiments.leak_summary(level)
    assert "did not show" in text and "Nothing was learned" not in text


def test_selecting_features_on_every_row_fakes_learning_on_noise():
    leak = experiments.selection_leak(n_rows=200, n_features=2000, keep=20, seeds=range(4))
    assert list(leak.columns) == ["seed", "leaky", "honest"] and len(leak) == 4
    assert leak.leaky.min() > 0.65  # coin-flip labels, yet far above chance
    assert abs(leak.honest.mean() - 0.5) < 0.1  # the honest pipeline is at chance
    again = experiments.selection_leak(n_rows=200, n_features=2000, keep=20, seeds=range(4))
    assert leak.equals(again)  # seeded
