"""The comparison's results (dlnb.tabular.results): summaries over seeds, tables, crossovers, prose."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb.tabular.results import Results


def test_crossover_is_read_from_the_mean_curves():
    rows = []
    for n, xgb, mlp in [
        (100, 0.80, 0.70),
        (1000, 0.85, 0.84),
        (10_000, 0.88, 0.90),
        (100_000, 0.89, 0.93),
    ]:
        for seed, jitter in ((0, -0.005), (1, 0.005), (2, 0.0)):
            rows += [
                {
                    "dataset": "d",
                    "task": "binary",
                    "model": "xgboost",
                    "seed": seed,
                    "n_train": n,
                    "accuracy": xgb + jitter,
                    "train_seconds": 1.0,
                    "tune_seconds": 2.0,
                    "infer_ms_per_1k": 1.0,
                    "params": np.nan,
                    "trees": 10,
                    "leaves": 80,
                },
                {
                    "dataset": "d",
                    "task": "binary",
                    "model": "mlp",
                    "seed": seed,
                    "n_train": n,
                    "accuracy": mlp + jitter / 2,  # the seeds move both models alike
                    "train_seconds": 5.0,
                    "tune_seconds": 9.0,
                    "infer_ms_per_1k": 2.0,
                    "params": 1000,
                    "trees": np.nan,
                    "leaves": np.nan,
                },
            ]
    results = Results(pd.DataFrame(rows))
    assert results.crossover("mlp") == 10_000 and results.crossover("xgboost", "mlp") is None
    text = results.describe("timed here")
    # MLP ahead by 0.04 with the same offset on both seeds: an interval that excludes 0
    assert "XGBoost is worse than MLP (one-hot)" in text and "-0.040 test accuracy" in text
    assert "4.5x as long (timed here)" in text
    assert "deep models ahead of XGBoost: at 10,000 rows MLP (one-hot); at 100,000 rows" in text
    assert "At the largest size they are still ahead." in text
    # the MLP ahead at the two smallest sizes only: XGBoost caught up, said so
    caught = pd.DataFrame(rows)
    small = caught["n_train"] <= 1000
    caught.loc[(caught["model"] == "mlp") & small, "accuracy"] += 0.2
    caught.loc[(caught["model"] == "mlp") & ~small, "accuracy"] -= 0.1
    words = Results(caught).describe()
    assert "at 100 rows MLP (one-hot); at 1,000 rows MLP (one-hot)." in words
    assert "From 10,000 training rows on no deep model was ahead: XGBoost caught up" in words
    behind = pd.DataFrame(rows)
    behind.loc[behind["model"] == "mlp", "accuracy"] -= 0.2
    assert "no deep model was ahead of XGBoost at any training size" in Results(behind).describe()


def _runs(task: str = "binary") -> pd.DataFrame:
    """Two seeds of XGBoost, an MLP and the majority baseline at 100 and 1,000 training rows."""
    metric = "rmse" if task == "regression" else "accuracy"
    scores = {"majority": (0.5, 0.5), "xgboost": (0.8, 0.85), "mlp": (0.7, 0.9)}
    rows = []
    for model, by_size in scores.items():
        for n, score in zip((100, 1000), by_size, strict=True):
            for seed, jitter in ((0, -0.01), (1, 0.01)):
                rows.append(
                    {
                        "dataset": "d",
                        "task": task,
                        "model": model,
                        "seed": seed,
                        "n_train": n,
                        metric: score + jitter,
                        "train_seconds": 1.0 + seed,
                        "tune_seconds": 4.0 + seed,
                        "infer_ms_per_1k": 0.5,
                        "params": 12_345 if model == "mlp" else np.nan,
                        "trees": 10 if model == "xgboost" else np.nan,
                        "leaves": 80 if model == "xgboost" else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def test_summary_averages_over_seeds_and_the_table_reads_the_largest_size():
    results = Results(_runs())
    assert results.metric == "accuracy" and results.higher_is_better
    s = results.summary()
    assert list(s["model"]) == ["majority", "majority", "xgboost", "xgboost", "mlp", "mlp"]
    row = s[(s["model"] == "mlp") & (s["n_train"] == 1000)].iloc[0]
    # sample std (ddof=1) over the 2 seeds: sqrt(2) x the population std
    assert row["accuracy_mean"] == pytest.approx(0.9)
    assert row["accuracy_std"] == pytest.approx(0.01 * 2**0.5)
    assert row["train_seconds_mean"] == 1.5 and row["train_seconds_std"] == pytest.approx(0.5**0.5)
    assert (s["seeds"] == 2).all()
    largest = results.largest()
    assert list(largest["model"]) == ["mlp", "xgboost", "majority"] and set(largest["n_train"]) == {
        1000
    }
    table = results.table()
    assert list(table.index) == ["MLP (one-hot)", "XGBoost", "majority class"]
    assert "majority class" in repr(results) and "2 seeds" in repr(results)
    assert table.loc["MLP (one-hot)", "accuracy"] == "0.9000 ± 0.0141"
    assert (table["seeds"] == 2).all()  # the count behind every mean and std
    assert table.loc["XGBoost", "size"] == "10 trees, 80 leaves"
    assert table.loc["MLP (one-hot)", "size"] == "12,345 parameters"
    assert table.loc["XGBoost", "train s"] == "1.50" and table.loc["XGBoost", "tuning s"] == "4.5"
    assert "roc_auc" not in table


def test_regression_results_rank_by_the_lowest_rmse():
    results = Results(_runs("regression"))
    assert results.metric == "rmse" and not results.higher_is_better
    # the regression baseline predicts the training mean: it is not a "majority class"
    assert "mean predictor" in results.table().index
    assert "mean predictor" in results.per_seed_table().columns
    assert list(results.largest()["model"]) == ["majority", "xgboost", "mlp"]
    assert results.crossover("xgboost", "mlp") == 1000  # a lower RMSE than the MLP from there on
    assert results.crossover("mlp") is None and results.crossover("catboost") is None


def test_per_seed_reads_the_largest_size():
    per_seed = Results(_runs()).per_seed()
    assert list(per_seed.index) == [0, 1]
    assert per_seed.loc[0, "mlp"] == pytest.approx(0.89) and per_seed.loc[1, "xgboost"] == 0.86


def test_a_model_has_one_colour_in_every_panel_and_no_curve_through_two_sizes():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_rgba

    from dlnb.tabular.results import COLORS

    results = Results(_runs())
    fig = results.plot()
    assert len(fig.axes) == 1  # two training sizes: the score-vs-size panel is left out
    frame = results.frame
    three = pd.concat([frame, frame[frame["n_train"] == 1000].assign(n_train=5000)])
    fig = Results(three).plot()
    curve, cost = fig.axes
    for ax in (curve, cost):
        handles, labels = ax.get_legend_handles_labels()
        colours = {label: h.lines[0].get_color() for h, label in zip(handles, labels, strict=True)}
        assert to_rgba(colours["MLP (one-hot)"]) == to_rgba(COLORS["mlp"])
        assert to_rgba(colours["XGBoost"]) == to_rgba(COLORS["xgboost"])


def _three_seeds(task: str = "binary") -> Results:
    """Three seeds at one size: XGBoost 0.02 ahead of the MLP on every seed, within 0.001."""
    metric = "rmse" if task == "regression" else "accuracy"
    rows = [
        {
            "dataset": "d",
            "task": task,
            "model": m,
            "seed": s,
            "n_train": 100,
            metric: v,
            "epochs": e,
        }
        for m, values, e in (
            ("majority", (0.5, 0.5, 0.5), 0),
            ("xgboost", (0.80, 0.81, 0.82), 90),
            ("mlp", (0.781, 0.79, 0.80), 30),
            ("emb_mlp", (0.70, 0.71, 0.72), 12),
        )
        for s, v in enumerate(values)
    ]
    return Results(pd.DataFrame(rows))


def test_effects_are_paired_over_seeds_and_error_makes_lower_always_better():
    results = _three_seeds()
    assert results.best() == "mlp" and results.best(("emb_mlp",)) == "emb_mlp"
    accuracy = results.effect("xgboost", "mlp")
    assert accuracy.verdict == "better" and accuracy.diff == pytest.approx(0.0197, abs=1e-4)
    error = results.effect("xgboost", "mlp", error=True)
    assert error.diff == pytest.approx(-accuracy.diff) and error.verdict == "better"
    assert error.metric == "test error rate" and not error.higher_is_better
    # on a regression table the error is the RMSE itself: lower XGBoost RMSE -> negative diff
    rmse = _three_seeds("regression").effect("mlp", "xgboost", error=True)
    assert rmse.diff < 0 and rmse.verdict == "better" and rmse.metric == "test RMSE"


def test_caps_and_learning_checks_read_the_runs():
    results = _three_seeds()
    caps = {c.name: c for c in results.caps(30)}
    assert set(caps) == {"MLP (one-hot)", "MLP + embeddings"}  # the deep models that ran
    assert caps["MLP (one-hot)"].capped == 3 and not caps["MLP + embeddings"].any_capped
    check = results.learned("emb_mlp", 0.02)
    assert check.learned and check.reference == 0.5 and "majority class" in check.sentence()
    assert not results.learned("emb_mlp", 0.3).learned


def test_learning_curves_share_one_legend_outside_the_panels():
    import matplotlib

    matplotlib.use("Agg")
    from dlnb.tabular.results import plot_learning_curves

    frame = _runs()
    three = Results(pd.concat([frame, frame[frame["n_train"] == 1000].assign(n_train=5000)]))
    fig = plot_learning_curves({"a": three, "b": three})
    assert len(fig.axes) == 2 and all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "majority class",
        "XGBoost",
        "MLP (one-hot)",
    ]
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in fig.axes:  # the legend lies below the plotting areas, over no data
        assert box.y1 <= ax.get_window_extent().y0
