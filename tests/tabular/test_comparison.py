"""Preprocessing fitted on training rows only, the shared splits, and the comparison harness."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from dlnb.tabular import comparison as tabular_compare
from dlnb.tabular.comparison import Budget, compare
from dlnb.tabular.preprocess import UNKNOWN, fit_preprocessor, make_split
from dlnb.tabular.results import Results, scoreboard
from dlnb.tabular.tables import Table, synthetic_table

# Tiny models: one thread is faster and does not oversubscribe a shared machine.
pytestmark = pytest.mark.usefixtures("single_thread")


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "income": rng.lognormal(10, 1, n),
            "age": rng.integers(18, 90, n).astype(float),
            "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        }
    )
    df.loc[::10, "age"] = np.nan
    df.loc[::7, "city"] = np.nan
    return df


def _state(pre) -> dict:
    return copy.deepcopy({k: v for k, v in vars(pre).items()})


def test_preprocessor_never_sees_data_it_was_not_fitted_on():
    train, test = _frame(200, seed=0), _frame(100, seed=1)
    pre = fit_preprocessor(train, ["city"])
    fitted = _state(pre)
    x_before = pre.transform(train)

    wild = test.copy()
    wild["income"] *= 1000.0
    wild["age"] = np.nan
    wild["city"] = "marseille"
    for X in (test, wild):
        pre.transform(X)
        pre.to_xgboost(X)
    after = _state(pre)
    for key, value in fitted.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[key])
        else:
            assert value == after[key], key
    # the training rows still map to exactly the same numbers
    for a, b in zip(x_before, pre.transform(train), strict=True):
        np.testing.assert_array_equal(a, b)
    # and the statistics are those of the training rows alone
    assert pre.fill[1] == np.nanmedian(train["age"]) and pre.levels["city"] == (
        "lyon",
        "nice",
        "paris",
    )


@pytest.mark.slow
def test_compare_fits_preprocessing_on_the_training_rows_only(monkeypatch):
    table = synthetic_table(600, cardinality=8)
    seen = []

    def spy(X, *args, **kwargs):
        seen.append(X.index.to_numpy().copy())
        return fit_preprocessor(X, *args, **kwargs)

    monkeypatch.setattr(tabular_compare, "fit_preprocessor", spy)
    torch.set_num_threads(2)
    compare(
        table,
        models=("xgboost",),
        seeds=(0, 1),
        train_sizes=(200, None),
        budget=Budget(trials=1, max_rounds=20),
        threads=1,
        progress=False,
    )
    assert torch.get_num_threads() == 2  # the cap is lifted afterwards
    assert len(seen) == 4
    for i, rows in enumerate(seen):
        split = make_split(table, seed=i // 2)
        assert set(rows) <= set(split.train)
        assert not set(rows) & (set(split.valid) | set(split.test))
    assert len(seen[0]) == 200 and len(seen[1]) == len(make_split(table, 0).train)


def test_transform_codes_unknown_and_missing_categories_and_fills_numbers():
    train = pd.DataFrame({"n": [1.0, 2.0, np.nan, 4.0], "c": ["a", "b", "a", None]})
    pre = fit_preprocessor(train, ["c"], scaling="standard")
    assert pre.cardinalities == [3] and pre.indicators == ("n",)
    test = pd.DataFrame({"n": [np.nan, 2.0], "c": ["b", "zebra"]})
    x_num, x_cat = pre.transform(test)
    assert list(x_cat[:, 0]) == [2, UNKNOWN]
    assert list(pre.transform(train)[1][:, 0]) == [1, 2, 1, UNKNOWN]
    filled = np.array([1.0, 2.0, 2.0, 4.0])  # the median 2 fills the gap
    assert x_num[0, 0] == pytest.approx((2.0 - filled.mean()) / filled.std())
    assert list(x_num[:, 1]) == [1.0, 0.0]  # the missing-value indicator
    xgb = pre.to_xgboost(test)
    assert list(xgb["c"].cat.categories) == ["a", "b"] and pd.isna(xgb.loc[1, "c"])
    assert np.isnan(xgb.loc[0, "n"])  # XGBoost handles missing numbers itself


def test_quantile_scaling_is_monotonic_and_gaussian_on_train():
    train = _frame(2000)
    pre = fit_preprocessor(train, ["city"])
    x_num, _ = pre.transform(train)
    income = x_num[:, 0]
    order = np.argsort(train["income"].to_numpy())
    assert np.all(np.diff(income[order]) >= 0)
    assert abs(income.mean()) < 0.05 and abs(income.std() - 1) < 0.05
    extreme = pre.transform(train.assign(income=1e12).head(3))[0][:, 0]
    assert np.all(np.isfinite(extreme)) and np.all(extreme > 4)


def test_bad_inputs_give_clear_errors():
    train = _frame()
    pre = fit_preprocessor(train, ["city"])
    with pytest.raises(ValueError, match=r"missing \['city'\], unexpected \['town'\]"):
        pre.transform(train.rename(columns={"city": "town"}))
    with pytest.raises(ValueError, match="single level"):
        fit_preprocessor(train.assign(city="paris"), ["city"])
    with pytest.raises(ValueError, match="missing in every training row"):
        fit_preprocessor(train.assign(age=np.nan), ["city"])
    with pytest.raises(TypeError, match="non-numbers"):
        pre.transform(train.assign(age="old"))
    with pytest.raises(ValueError, match="scaling must be"):
        fit_preprocessor(train, ["city"], scaling="minmax")


def test_split_is_disjoint_stratified_and_keeps_an_official_test_split():
    table = synthetic_table(1000)
    s = make_split(table, seed=3)
    parts = [set(s.train), set(s.valid), set(s.test)]
    assert sum(map(len, parts)) == 1000 and len(set.union(*parts)) == 1000
    assert abs(len(s.test) - 200) <= 1 and abs(len(s.valid) - 150) <= 1
    assert abs(table.y[s.test].mean() - table.y.mean()) < 0.01
    assert not np.array_equal(s.test, make_split(table, seed=4).test)
    official = Table(
        "t", table.X, table.y, "binary", table.categorical, is_test=np.arange(1000) >= 900
    )
    assert set(make_split(official, seed=0).test) == set(range(900, 1000))


@pytest.mark.slow
def test_every_model_learns_and_results_report_costs():
    table = synthetic_table(1500, cardinality=10, label_noise=0.0, minority_noise=0.0)
    tiny = Budget(trials=2, max_epochs=15, patience=3, max_rounds=200, early_stopping_rounds=20)
    results = compare(
        table,
        seeds=(0, 1),
        budget=tiny,
        threads=1,
        progress=False,
        overrides={"ft_transformer": {"d_token": 16, "n_blocks": 1}},
    )
    f = results.frame
    assert len(f) == 2 * 5 and set(f["model"]) == {"majority", *tabular_compare.MODELS}
    majority = f[f["model"] == "majority"]["accuracy"].mean()
    for model in tabular_compare.MODELS:
        rows = f[f["model"] == model]
        assert rows["accuracy"].mean() > majority + 0.1, model
        assert (rows["roc_auc"] > 0.7).all() and (rows["train_seconds"] > 0).all()
        assert (rows["infer_ms_per_1k"] > 0).all() and (
            rows["tune_seconds"] >= rows["train_seconds"]
        ).all()
    nets = f[f["model"].isin(["mlp", "emb_mlp", "ft_transformer"])]
    assert (nets["params"] > 0).all() and nets["trees"].isna().all()
    xgb = f[f["model"] == "xgboost"]
    assert (xgb["trees"] >= 1).all() and (xgb["leaves"] >= xgb["trees"]).all()

    s = results.summary()
    assert (s["seeds"] == 2).all()
    acc = f[f["model"] == "xgboost"]["accuracy"]
    row = s[s["model"] == "xgboost"].iloc[0]
    assert row["accuracy_mean"] == pytest.approx(acc.mean())
    assert row["accuracy_std"] == pytest.approx(acc.std(ddof=0))
    assert "±" in results.table().iloc[0]["accuracy"]
    assert (
        results.plot().axes
        and f"{results.largest().iloc[0]['accuracy_mean']:.4f}" in results.describe()
    )

    audit = results.audit("xgboost")
    assert set(audit.before.index) == {"majority", "minority", "all"}
    assert audit.plot().axes


@pytest.mark.slow
def test_regression_is_scored_by_rmse_and_beats_the_mean():
    table = synthetic_table(1200, task="regression", cardinality=10)
    results = compare(
        table,
        models=("xgboost", "mlp"),
        seeds=(0,),
        threads=1,
        progress=False,
        budget=Budget(trials=1, max_epochs=20, patience=3, max_rounds=200),
    )
    f = results.frame.set_index("model")
    assert results.metric == "rmse" and "accuracy" not in f
    assert f.loc["xgboost", "rmse"] < 0.8 * f.loc["majority", "rmse"]
    assert f.loc["mlp", "rmse"] < 0.8 * f.loc["majority", "rmse"]
    with pytest.raises(ValueError, match="binary classification"):
        results.audit("xgboost")


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
    assert "best (or tied best) mean test score on 1 of 2 tables" in board
    assert "cheapest to tune on 2 of 2" in board


def test_compare_rejects_unknown_models_and_empty_budgets():
    table = synthetic_table(300)
    with pytest.raises(ValueError, match="Unknown models"):
        compare(table, models=("catboost",))
    with pytest.raises(ValueError, match="trials"):
        compare(table, budget=Budget(trials=0))
