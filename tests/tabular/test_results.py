"""The comparison's results (dlnb.tabular.results): summaries over seeds, tables, crossovers, prose."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb.tabular.results import Results, scoreboard


def test_crossover_is_read_from_the_mean_curves():
    rows = []
    for n, xgb, mlp in [
        (100, 0.80, 0.70),
        (1000, 0.85, 0.84),
        (10_000, 0.88, 0.90),
        (100_000, 0.89, 0.93),
    ]:
        for seed, jitter in ((0, -0.005), (1, 0.005)):
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
                    "accuracy": mlp - jitter,
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
    text = results.describe()
    assert "MLP (one-hot) beat XGBoost by 0.0400" in text and "4.5x" in text
    assert "from 10,000 training rows on: MLP (one-hot)" in text
    board = scoreboard(
        {"d": results, "small": Results(results.frame[results.frame["n_train"] < 5000])}
    )
    assert "within the seed-to-seed spread of the best, on 1 of 2 tables" in board
    assert "cheapest to tune on 2 of 2" in board
    close = results.frame.copy()  # MLP ahead by 0.004 at the largest size, std 0.005: a tie
    close.loc[(close["model"] == "mlp") & (close["n_train"] == 100_000), "accuracy"] -= 0.036
    assert "on 1 of 1 tables" in scoreboard({"d": Results(close)})


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
    assert table.loc["MLP (one-hot)", "accuracy"] == "0.9000 ± 0.0141"
    assert (table["seeds"] == 2).all()  # the count behind every mean and std
    assert table.loc["XGBoost", "size"] == "10 trees, 80 leaves"
    assert table.loc["MLP (one-hot)", "size"] == "12,345 parameters"
    assert table.loc["XGBoost", "train s"] == "1.50" and table.loc["XGBoost", "tuning s"] == "4.5"
    assert "roc_auc" not in table


def test_regression_results_rank_by_the_lowest_rmse():
    results = Results(_runs("regression"))
    assert results.metric == "rmse" and not results.higher_is_better
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
