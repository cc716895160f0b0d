"""Tabular datasets: the `Table` the harness works on, a synthetic generator, and the catalogue.

Every tabular dataset in the registry materialises to the same arrays: `num` (float32, rows x
numeric columns, NaN = missing), `cat` (strings, rows x categorical columns, "" = missing), `y`,
the column names, the task, the sensitive columns and optionally `is_test` (an official test
split). `load_table(name)` turns them into a `Table`; `table_from_frame` does the same for a
DataFrame of your own and checks the target. The datasets themselves are registered in
`dlnb.tabular_catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlnb.data.loaders import subset_indices

Arrays = dict[str, np.ndarray]
TASKS = ("binary", "multiclass", "regression")


@dataclass
class Table:
    """Features `X` (numeric and categorical columns), target `y` and what the task is."""

    name: str
    X: pd.DataFrame
    y: np.ndarray
    task: str
    categorical: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    is_test: np.ndarray | None = None

    @property
    def numeric(self) -> tuple[str, ...]:
        """Names of the numeric columns."""
        return tuple(c for c in self.X.columns if c not in self.categorical)

    def __len__(self) -> int:
        return len(self.X)

    def subsample(self, n_rows: int, seed: int = 0) -> Table:
        """A random subset of `n_rows` rows (all rows when the table is smaller)."""
        if n_rows >= len(self):
            return self
        idx = subset_indices(len(self), n_rows, seed)
        return Table(
            self.name,
            self.X.iloc[idx].reset_index(drop=True),
            self.y[idx],
            self.task,
            self.categorical,
            self.sensitive,
            self.classes,
            None if self.is_test is None else self.is_test[idx],
        )


def check_target(y, name: str = "target") -> np.ndarray:
    """Return `y` as an array, or raise a clear ValueError if it is empty, has NaN or is constant."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"The {name} must be a non-empty 1-D column, got shape {y.shape}.")
    missing = pd.isna(y)
    if missing.any():
        raise ValueError(
            f"The {name} has {int(missing.sum())} missing (NaN) values out of {len(y)}. Drop those "
            "rows (df.dropna(subset=[target])) or fill them before training; a model cannot learn "
            "from or be scored on an unknown answer."
        )
    if len(pd.unique(y)) < 2:
        raise ValueError(
            f"The {name} is constant (every row is {y[0]!r}): there is nothing to learn. Check that "
            "you picked the right column and did not filter the rows down to one class."
        )
    return y


def infer_task(y: np.ndarray) -> str:
    """'binary', 'multiclass' or 'regression' from the values of a target."""
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        return "regression"
    n = len(np.unique(y))
    if y.dtype.kind in "fiu" and n > 20:
        return "regression"
    return "binary" if n == 2 else "multiclass"


def table_from_frame(
    df: pd.DataFrame,
    target: str,
    *,
    name: str = "table",
    task: str | None = None,
    categorical: list[str] | None = None,
    sensitive: tuple[str, ...] = (),
) -> Table:
    """Build a `Table` from a DataFrame: the target is checked, labels become integer classes."""
    if target not in df.columns:
        raise ValueError(
            f"The target column {target!r} is not in the DataFrame. Its columns are: "
            f"{', '.join(map(str, df.columns))}. Pass target= one of them."
        )
    y = check_target(df[target].to_numpy(), f"target column {target!r}")
    X = df.drop(columns=[target]).reset_index(drop=True)
    if categorical is None:
        categorical = [
            c
            for c in X.columns
            if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])
        ]
    unknown = [c for c in list(categorical) + list(sensitive) if c not in X.columns]
    if unknown:
        raise ValueError(
            f"Columns {unknown} are named as categorical/sensitive but are not features."
        )
    task = task or infer_task(y)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    classes: tuple[str, ...] = ()
    if task == "regression":
        y = y.astype(np.float32)
    else:
        labels, y = np.unique(y, return_inverse=True)
        classes = tuple(map(str, labels))
    for c in categorical:
        X[c] = X[c].astype("string").astype(object).where(X[c].notna(), np.nan)
    return Table(name, X, y, task, tuple(categorical), tuple(sensitive), classes)


def table_arrays(
    num: np.ndarray,
    num_names,
    cat: np.ndarray,
    cat_names,
    y: np.ndarray,
    task: str,
    *,
    sensitive=(),
    classes=(),
    is_test: np.ndarray | None = None,
) -> Arrays:
    """Pack a table into the registry's arrays (strings as fixed-width unicode, no pickles)."""
    arrays = {
        "num": np.asarray(num, dtype=np.float32).reshape(len(y), len(num_names)),
        "num_names": np.asarray(list(num_names), dtype=str),
        "cat": np.asarray(cat, dtype=str).reshape(len(y), len(cat_names)),
        "cat_names": np.asarray(list(cat_names), dtype=str),
        "y": np.asarray(y, dtype=np.float32 if task == "regression" else np.int64),
        "task": np.asarray(task),
        "sensitive": np.asarray(list(sensitive), dtype=str),
        "classes": np.asarray(list(classes), dtype=str),
    }
    if is_test is not None:
        arrays["is_test"] = np.asarray(is_test, dtype=bool)
    return arrays


def table_from_arrays(arrays: Arrays, name: str = "table") -> Table:
    """The `Table` stored in registry arrays (see `table_arrays`)."""
    num_names = [str(n) for n in arrays["num_names"]]
    cat_names = [str(n) for n in arrays["cat_names"]]
    columns = {n: arrays["num"][:, i].astype(np.float64) for i, n in enumerate(num_names)}
    for i, n in enumerate(cat_names):
        col = arrays["cat"][:, i].astype(object)
        col[col == ""] = np.nan
        columns[n] = col
    X = pd.DataFrame(columns)
    return Table(
        name,
        X,
        arrays["y"],
        str(arrays["task"]),
        tuple(cat_names),
        tuple(str(s) for s in arrays["sensitive"]),
        tuple(str(c) for c in arrays["classes"]),
        arrays.get("is_test"),
    )


def load_table(name: str) -> Table:
    """Load a registered tabular dataset as a `Table` (a file of your own: `from_csv`)."""
    from dlnb.data.registry import load, names

    if not isinstance(name, str) or name not in names():
        raise ValueError(
            f"load_table loads a registered dataset by name, and {name!r} is not one "
            f"({', '.join(names())}). For a CSV/TSV file or a DataFrame of your own, use "
            "dlnb.tabular.from_csv(path_or_df, target=...)."
        )
    return table_from_arrays(load(name), name)


def load_real_table(name: str = "auto", offline: str = "diamonds") -> tuple[Table, str]:
    """The table `name`, or with "auto" Adult when it can be had and else `offline`; with a note
    in words of which path ran and, for the fallback, what it cannot show."""
    from dlnb.data.registry import DatasetUnavailable, get_spec

    if name != "auto":
        return load_table(name), f"{name}, asked for with REAL_DATASET."
    try:
        return load_table("adult"), "Online path: Adult (census income), downloaded and verified."
    except DatasetUnavailable as exc:
        reason = str(exc).splitlines()[0]
    published = get_spec("adult").extra.get("reference_accuracy")
    return load_table(offline), (
        f"Offline path: {offline} from the pydataset mirror, because Adult is not available "
        f"here ({reason}). What the fallback cannot show: Adult's census-income classification "
        f"and its published tuned-XGBoost accuracy (about {published})."
    )


def reference_accuracy(name: str) -> float | None:
    """The published accuracy the registry records for dataset `name` (None when it has none)."""
    from dlnb.data.registry import get_spec

    value = get_spec(name).extra.get("reference_accuracy")
    return None if value is None else float(value)


# ----------------------------------------------------------------------------- synthetic data


def make_synthetic(
    n_rows: int = 20_000,
    *,
    task: str = "binary",
    n_numeric: int = 6,
    n_high_card: int = 2,
    cardinality: int = 100,
    latent_dim: int = 3,
    embedding_effect: float = 1.0,
    tree_effect: float = 1.0,
    label_noise: float = 0.05,
    minority_fraction: float = 0.3,
    minority_noise: float = 0.1,
    missing_fraction: float = 0.02,
    seed: int = 0,
) -> Arrays:
    """A table whose knobs decide who should win: embeddings, trees, or neither.

    - `n_high_card` categorical columns with `cardinality` levels each. Every level has a hidden
      `latent_dim`-dimensional vector; the target depends smoothly on those vectors (a main effect
      and, between pairs of columns, their dot product, like users x items). Learned embeddings can
      recover this structure; trees must split on sets of levels. Weight: `embedding_effect`.
    - axis-aligned thresholds and their interactions on the numeric columns (trees' home ground).
      Weight: `tree_effect`. A small linear effect of `x2` is always present.
    - `label_noise`: fraction of labels flipped (classification) or noise std relative to the
      signal (regression); the minority group of the sensitive column `group` gets `minority_noise`
      more, and its `x0` is shifted, so a bias audit has something to find.
    - `missing_fraction` of `x1` is recorded as missing (after the target was computed).
    """
    if task not in ("binary", "regression"):
        raise ValueError(f"make_synthetic makes 'binary' or 'regression' tables, not {task!r}.")
    if n_numeric < 3 or n_rows < 10 or cardinality < 2 or latent_dim < 1:
        raise ValueError(
            "make_synthetic needs n_numeric >= 3, n_rows >= 10, cardinality >= 2 "
            "and latent_dim >= 1."
        )
    rng = np.random.default_rng(seed)
    minority = rng.random(n_rows) < minority_fraction
    x = rng.normal(size=(n_rows, n_numeric)).round(4)
    x[:, 0] = (x[:, 0] - 0.5 * minority).round(4)
    codes = rng.integers(cardinality, size=(n_rows, n_high_card))
    latent = rng.normal(size=(n_high_card, cardinality, latent_dim))
    direction = rng.normal(size=(n_high_card, latent_dim))

    # Elementwise products and sums only (no BLAS), so the output is identical on every machine.
    z = latent[np.arange(n_high_card)[None, :], codes]  # (rows, columns, latent)
    f_emb = np.sin((z * direction[None]).sum(-1)).sum(-1) if n_high_card else np.zeros(n_rows)
    for j in range(n_high_card):
        for k in range(j + 1, n_high_card):
            f_emb = f_emb + (z[:, j] * z[:, k]).sum(-1) / np.sqrt(latent_dim)

    f_tree = np.zeros(n_rows)
    for _ in range(4):
        a, b = rng.choice(n_numeric, 2, replace=False)
        ta, tb = rng.uniform(-0.7, 0.7, 2)
        f_tree += rng.choice([-1.0, 1.0]) * ((x[:, a] > ta) & (x[:, b] > tb))
    t0, t1 = rng.uniform(-0.5, 0.5, 2)
    f_tree += 1.5 * ((x[:, 0] > t0) ^ (x[:, 1] > t1))

    def unit(f: np.ndarray) -> np.ndarray:
        return (f - f.mean()) / f.std() if f.std() > 0 else f

    signal = embedding_effect * unit(f_emb) + tree_effect * unit(f_tree) + 0.5 * x[:, 2]
    noise_rate = np.where(minority, label_noise + minority_noise, label_noise)
    if task == "binary":
        y = (signal > np.median(signal)).astype(np.int64)
        y ^= (rng.random(n_rows) < noise_rate).astype(np.int64)
        classes: tuple[str, ...] = ("0", "1")
    else:
        y = (signal + noise_rate * signal.std() * rng.normal(size=n_rows)).round(4)
        classes = ()
    x[rng.random(n_rows) < missing_fraction, 1] = np.nan

    cat = [[f"{chr(97 + j)}{c:04d}" for c in codes[:, j]] for j in range(n_high_card)]
    cat.append(np.where(minority, "minority", "majority").tolist())
    cat_names = [f"id_{chr(97 + j)}" for j in range(n_high_card)] + ["group"]
    return table_arrays(
        x,
        [f"x{i}" for i in range(n_numeric)],
        np.array(cat).T,
        cat_names,
        y,
        task,
        sensitive=("group",),
        classes=classes,
    )


def synthetic_table(n_rows: int = 20_000, **knobs) -> Table:
    """`make_synthetic(n_rows, **knobs)` as a `Table`."""
    return table_from_arrays(make_synthetic(n_rows, **knobs), "synthetic")
