"""Tabular preprocessing (dlnb.tabular.preprocess): fitted on training rows only; the shared splits."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from dlnb.tabular.preprocess import UNKNOWN, fit_preprocessor, make_split
from dlnb.tabular.tables import Table, synthetic_table


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


def test_a_table_of_only_categorical_columns_transforms_with_quantile_scaling():
    train = pd.DataFrame({"c": ["a", "b", "a", "b"]})
    x_num, x_cat = fit_preprocessor(train, ["c"]).transform(train)
    assert x_num.shape == (4, 0) and list(x_cat[:, 0]) == [1, 2, 1, 2]


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
