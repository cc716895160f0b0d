"""Your own table: `from_csv` reads a CSV/TSV file (or takes a DataFrame) into the `Table` the
harness and `fit_table` work on, with an optional official test split and a named positive class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dlnb.tabular.tables import Table, table_from_frame

__all__ = ["from_csv", "read_frame"]


def read_frame(source: str | Path | pd.DataFrame, what: str = "table") -> pd.DataFrame:
    """A DataFrame from a DataFrame (copied) or a CSV/TSV path (the separator is sniffed)."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"from_csv reads a path to a CSV/TSV file or a pandas DataFrame, not "
            f"{type(source).__name__}. For numpy arrays, build a DataFrame first."
        )
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"The {what} file {path} does not exist.")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
    frame = pd.read_csv(path, sep=sep, engine="python", skipinitialspace=True, na_values=["?"])
    if frame.empty:
        raise ValueError(f"The {what} file {path} has a header but no rows.")
    return frame


def _with_positive(df: pd.DataFrame, target: str, positive) -> pd.DataFrame:
    """The binary target with `positive` as class 1 and the other value as class 0."""
    values = df[target].dropna()
    text = values.astype(str).str.strip().str.rstrip(".")  # "<=50K." in Adult's test file
    if str(positive) not in set(text):
        raise ValueError(
            f"positive={positive!r} is not a value of the target column {target!r}; its values "
            f"are {sorted(set(text))[:10]}."
        )
    if text.nunique() != 2:
        raise ValueError(
            f"positive= names the positive class of a binary target, but {target!r} has "
            f"{text.nunique()} values; leave positive=None for a multiclass target."
        )
    negative = (set(text) - {str(positive)}).pop()
    out = df.copy()
    is_positive = df[target].astype(str).str.strip().str.rstrip(".") == str(positive)
    out[target] = np.where(is_positive, f"1:{positive}", f"0:{negative}")
    out.loc[df[target].isna(), target] = np.nan
    return out


def from_csv(
    source: str | Path | pd.DataFrame,
    target: str,
    *,
    positive: str | int | None = None,
    test: str | Path | pd.DataFrame | float | None = None,
    sensitive: tuple[str, ...] = (),
    categorical: list[str] | None = None,
    task: str | None = None,
    name: str | None = None,
    seed: int = 0,
) -> Table:
    """Your own table as a `Table`: a CSV/TSV path or a DataFrame, the `target` column to predict.

    `positive` names the class of a binary target that becomes 1 (else the labels are sorted;
    a trailing "." of a label, as in Adult's test file, is ignored with it); `test` is an official
    test split (a path or a DataFrame with the same columns, kept as the test rows by `compare`)
    or a fraction of the rows held out once, stratified, with `seed`; `sensitive`, `categorical`
    and `task` are passed to `table_from_frame`.
    """
    frame = read_frame(source)
    if target not in frame.columns:
        raise ValueError(
            f"The target column {target!r} is not in the table; its columns are: "
            f"{', '.join(map(str, frame.columns))}."
        )
    is_test = None
    if isinstance(test, float):
        if not 0 < test < 1:
            raise ValueError(f"test= as a fraction must be in (0, 1), got {test}.")
    elif test is not None:
        test_frame = read_frame(test, "test")
        if set(test_frame.columns) != set(frame.columns):
            raise ValueError(
                "The test table's columns differ from the training table's: missing "
                f"{sorted(set(frame.columns) - set(test_frame.columns)) or 'none'}, unexpected "
                f"{sorted(set(test_frame.columns) - set(frame.columns)) or 'none'}."
            )
        is_test = np.r_[np.zeros(len(frame), bool), np.ones(len(test_frame), bool)]
        frame = pd.concat([frame, test_frame[frame.columns]], ignore_index=True)
    if positive is not None:
        frame = _with_positive(frame, target, positive)
    label = name or (Path(source).stem if isinstance(source, (str, Path)) else "table")
    table = table_from_frame(
        frame, target, name=label, task=task, categorical=categorical, sensitive=sensitive
    )
    if positive is not None:
        table.classes = tuple(c.split(":", 1)[1] for c in table.classes)
    if isinstance(test, float):
        from sklearn.model_selection import train_test_split

        rows = np.arange(len(table))
        strat = None if table.task == "regression" else table.y
        _, held = train_test_split(rows, test_size=test, random_state=seed, stratify=strat)
        is_test = np.isin(rows, held)
    table.is_test = is_test
    return table
