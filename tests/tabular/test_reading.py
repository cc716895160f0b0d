"""Your own table: `from_csv` from a file or a DataFrame, and the calls that name it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnb.tabular.comparison import compare
from dlnb.tabular.reading import from_csv
from dlnb.tabular.tables import load_table


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "age": x.round(3),
            "city": rng.choice(["a", "b", "c"], n),
            "sex": rng.choice(["f", "m"], n),
            "income": np.where(x > 0.5, ">50K", "<=50K"),
        }
    )


def test_a_csv_and_its_official_test_file_become_a_table_with_the_named_positive_class(tmp_path):
    df = _frame()
    df.iloc[:40].to_csv(tmp_path / "train.csv", index=False)
    test = df.iloc[40:].copy()
    test["income"] = test["income"] + "."  # Adult's test file ends its labels with a dot
    test.to_csv(tmp_path / "test.csv", index=False)
    table = from_csv(
        tmp_path / "train.csv",
        "income",
        positive=">50K",
        test=tmp_path / "test.csv",
        sensitive=("sex",),
    )
    assert table.name == "train" and table.task == "binary" and table.sensitive == ("sex",)
    assert table.classes == ("<=50K", ">50K")  # the positive class is class 1 ...
    flipped = from_csv(df, "income", positive="<=50K")
    assert (
        flipped.classes == (">50K", "<=50K") and flipped.y.sum() == (df["income"] == "<=50K").sum()
    )
    assert np.array_equal(table.y, (df["income"] == ">50K").to_numpy().astype(int))
    assert table.is_test is not None and table.is_test.sum() == 20 and not table.is_test[:40].any()
    assert table.categorical == ("city", "sex")


def test_a_tsv_a_dataframe_and_a_test_fraction(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    table = from_csv(tmp_path / "t.tsv", "income", test=0.25)
    assert len(table) == 60 and table.is_test is not None and table.is_test.sum() == 15
    assert table.classes == ("<=50K", ">50K")  # sorted without positive=
    same = from_csv(df, "income", test=0.25)
    assert np.array_equal(same.is_test, table.is_test) and same.name == "table"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "salary"}, "not in the table"),
        ({"target": "income", "positive": "rich"}, "not a value of the target"),
        ({"target": "city", "positive": "a"}, "binary target"),
        ({"target": "income", "test": 1.5}, "fraction"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        from_csv(_frame(), **kwargs)


def test_bad_sources_name_the_right_call(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_csv(tmp_path / "nope.csv", "income")
    with pytest.raises(TypeError, match="DataFrame"):
        from_csv(np.zeros((3, 2)), "income")  # type: ignore[arg-type]
    test = _frame().drop(columns=["sex"])
    with pytest.raises(ValueError, match=r"missing \['sex'\]"):
        from_csv(_frame(), "income", test=test)
    with pytest.raises(TypeError, match="from_csv"):
        compare(_frame(), seeds=(0,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from_csv"):
        load_table(str(tmp_path / "adult.data"))
