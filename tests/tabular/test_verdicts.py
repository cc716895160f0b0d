"""Notebook 02's closing verdicts (dlnb.tabular.verdicts): real tables tallied, synthetic ones
apart, timings said where they were taken, and the values recorded for the gates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb import claims
from dlnb.tabular.results import Results
from dlnb.tabular.tables import table_from_frame
from dlnb.tabular.verdicts import margin_over_baseline, real_records, scoreboard, timing_note


def _results(scores: dict[str, list[float]], task: str = "binary", name: str = "d") -> Results:
    """One row per model and seed at 1,000 training rows; XGBoost the cheapest to tune."""
    metric = "rmse" if task == "regression" else "accuracy"
    rows = [
        {
            "dataset": name,
            "task": task,
            "model": model,
            "seed": seed,
            "n_train": 1000,
            metric: value,
            "train_seconds": 1.0,
            "tune_seconds": 1.0 if model == "xgboost" else 4.0,
            "infer_ms_per_1k": 1.0,
            "params": np.nan if model == "xgboost" else 5000,
            "trees": 10 if model == "xgboost" else np.nan,
            "leaves": 80 if model == "xgboost" else np.nan,
            "epochs": 0 if model == "majority" else 20,
        }
        for model, values in scores.items()
        for seed, value in enumerate(values)
    ]
    return Results(pd.DataFrame(rows))


WIN = {"majority": [0.5] * 3, "xgboost": [0.80, 0.81, 0.82], "mlp": [0.70, 0.71, 0.70]}
NOISE = {"majority": [0.5] * 3, "xgboost": [0.70, 0.66, 0.72], "mlp": [0.66, 0.71, 0.69]}


def test_synthetic_tables_are_not_counted_with_the_real_ones():
    real = {"diamonds": _results(WIN), "insteval": _results(NOISE)}
    synthetic = {"trees' home ground": _results(WIN)}
    board = scoreboard(real, synthetic, "timed on this CPU")
    assert "better on 1, within noise on 1 (of 2 tables)" in board  # the synthetic win is apart
    assert "built to favour one side each" in board and "(trees' home ground: better)" in board
    assert "- **trees' home ground** (synthetic, built for this regime)" in board
    assert "cheapest to tune on 3 of 3 tables (timed on this CPU)." in board
    assert "4.0x as long (timed on this CPU)." in board


def test_a_deep_model_ahead_on_a_real_table_is_tallied_as_worse():
    ahead = {"majority": [0.5] * 3, "xgboost": [0.70, 0.71, 0.70], "mlp": [0.80, 0.81, 0.82]}
    board = scoreboard({"t": _results(ahead)}, {})
    assert "worse on 1 (of 1 tables)" in board and "XGBoost is worse than MLP" in board


def test_timings_say_where_they_were_taken():
    assert "one thread per model" in timing_note("cpu", 1)
    assert "a GPU changes the deep models' costs" in timing_note("cpu", None)
    assert "every thread" in timing_note("cpu", None)
    assert "on a CPU the deep models' costs grow" in timing_note("cuda:0", None)


def test_the_margin_is_the_weakest_models_gain_over_the_baseline_in_either_direction():
    assert margin_over_baseline(_results(WIN)) == pytest.approx(0.2033, abs=1e-4)
    errors = {"majority": [0.44] * 3, "xgboost": [0.05] * 3, "mlp": [0.06] * 3}
    assert margin_over_baseline(_results(errors, "regression")) == pytest.approx(0.38)


def test_real_records_name_the_regression_baseline_for_what_it_is():
    r = _results(
        {"majority": [0.44] * 3, "xgboost": [0.05] * 3, "mlp": [0.06, 0.07, 0.065]},
        "regression",
        "diamonds",
    )
    frame = pd.DataFrame({"carat": [0.3, 1.0], "cut": ["Ideal", "Good"], "price": [2.5, 3.5]})
    r.source = table_from_frame(frame, "price", name="diamonds", task="regression")
    checks = [r.learned(m, 0.02) for m in ("xgboost", "mlp")]
    values = real_records(r, checks, [claims.capped("MLP (one-hot)", [20, 20, 50], 50)])
    assert values["real_mean_predictor_rmse"] == pytest.approx(0.44)
    assert "real_majority_rmse" not in values
    assert values["real_min_skill_over_baseline"] == pytest.approx(1 - 0.065 / 0.44)
    assert values["real_has_categoricals"] is True and values["real_dataset"] == "diamonds"
    assert values["real_all_learned"] is True and values["real_deep_capped_runs"] == 1
    assert values["real_best_deep_model"] == "mlp" and "xgboost_reference_shortfall" not in values
    assert values["real_max_seed_std"] == pytest.approx(0.005)
