"""Tabular datasets (dlnb.tabular.tables): the synthetic generator's knobs, tables from user data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb.tabular.tables import (
    check_target,
    make_synthetic,
    synthetic_table,
    table_from_arrays,
    table_from_frame,
)

# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_seeded():
    a, b, c = make_synthetic(500, seed=1), make_synthetic(500, seed=1), make_synthetic(500, seed=2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["num"], c["num"], equal_nan=True)


def test_synthetic_without_effects_is_a_threshold_on_x2_and_label_noise_flips_that_share():
    clean = synthetic_table(
        20_000, embedding_effect=0, tree_effect=0, label_noise=0, minority_noise=0
    )
    x2 = clean.X["x2"].to_numpy()
    assert np.array_equal(clean.y, (x2 > np.median(x2)).astype(int))

    noisy = synthetic_table(
        20_000, embedding_effect=0, tree_effect=0, label_noise=0.2, minority_noise=0.15
    )
    wrong = noisy.y != (x2 > np.median(x2))
    minority = (noisy.X["group"] == "minority").to_numpy()
    assert abs(wrong[~minority].mean() - 0.2) < 0.02
    assert abs(wrong[minority].mean() - 0.35) < 0.03


def test_synthetic_knobs_shape_the_table():
    t = synthetic_table(3000, n_numeric=4, n_high_card=3, cardinality=50, missing_fraction=0.1)
    assert list(t.categorical) == ["id_a", "id_b", "id_c", "group"]
    assert t.numeric == ("x0", "x1", "x2", "x3")
    assert t.X["id_a"].nunique() == 50
    assert abs(t.X["x1"].isna().mean() - 0.1) < 0.02 and t.X["x0"].notna().all()
    assert t.sensitive == ("group",) and t.task == "binary"
    reg = synthetic_table(500, task="regression")
    assert reg.task == "regression" and reg.y.dtype == np.float32 and len(np.unique(reg.y)) > 400
    with pytest.raises(ValueError, match="n_numeric >= 3"):
        make_synthetic(100, n_numeric=2)


def test_embedding_effect_is_carried_by_the_high_cardinality_columns():
    """With only the embedding effect, the levels of id_a and id_b explain the target."""
    t = synthetic_table(20_000, tree_effect=0, label_noise=0, minority_noise=0, cardinality=20)
    cell_mean = pd.Series(t.y).groupby([t.X["id_a"], t.X["id_b"]]).transform("mean").to_numpy()
    by_levels = np.mean((cell_mean > 0.5) == t.y)
    x2 = t.X["x2"].to_numpy()
    by_x2 = np.mean((x2 > np.median(x2)) == t.y)
    assert by_levels > 0.85 and by_levels > by_x2 + 0.15


# ----------------------------------------------------------------------------- user tables


def test_table_from_frame_checks_the_target():
    df = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0, 4.0], "c": list("xyxy"), "t": ["no", "yes", "no", "yes"]}
    )
    t = table_from_frame(df, "t")
    assert t.task == "binary" and t.classes == ("no", "yes") and t.categorical == ("c",)
    assert list(t.y) == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="target column 'income' is not in the DataFrame"):
        table_from_frame(df, "income")
    with pytest.raises(ValueError, match="constant"):
        table_from_frame(df.assign(t="no"), "t")
    with pytest.raises(ValueError, match="1 missing"):
        table_from_frame(df.assign(t=["no", None, "no", "yes"]), "t")
    with pytest.raises(ValueError, match="missing"):
        check_target(np.array([1.0, np.nan, 2.0]))


def test_table_from_arrays_round_trips_missing_categoricals():
    arrays = make_synthetic(50)
    arrays["cat"][0, 0] = ""
    t = table_from_arrays(arrays)
    assert pd.isna(t.X.loc[0, "id_a"]) and t.X["id_a"].notna().sum() == 49
