"""Tabular preprocessing fitted on the training split only, and the splits every model shares.

`fit_preprocessor(X_train)` learns everything it needs from the training rows (medians for
missing numbers, the scaling, the levels of each categorical); `Preprocessor.transform(X)` then
applies it unchanged to validation and test rows. Categorical level codes start at 1; code 0
means "missing, or a level never seen in training", so a model always has an answer for it.
`Preprocessor.to_xgboost(X)` gives XGBoost the raw numbers (it handles missing values itself)
and the categoricals as pandas `category` columns over the training levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlnb.tabular.tables import Table

UNKNOWN = 0  # the code of a missing categorical value or of a level unseen in training
SCALINGS = ("quantile", "standard", "none")


@dataclass
class Preprocessor:
    """What was learned from the training rows; apply it to any rows with `transform`."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    fill: np.ndarray  # per numeric column: the training median, used for missing values
    indicators: tuple[str, ...]  # numeric columns that had missing values in training
    scaling: str
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray | None  # (n_quantiles, n_numeric) training quantiles for "quantile"
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def cardinalities(self) -> list[int]:
        """Number of codes of each categorical (its training levels + the unknown code 0)."""
        return [len(self.levels[c]) + 1 for c in self.categorical]

    @property
    def n_numeric_out(self) -> int:
        """Width of `x_num`: the numeric columns plus one missing-value indicator per `indicators`."""
        return len(self.numeric) + len(self.indicators)

    def check_columns(self, X: pd.DataFrame) -> None:
        """Raise a clear ValueError if `X` does not have exactly the training columns."""
        expected, got = set(self.numeric) | set(self.categorical), set(X.columns)
        if expected != got:
            missing, extra = sorted(expected - got), sorted(got - expected)
            raise ValueError(
                "The columns do not match those the preprocessor was fitted on: "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}. Give train, validation "
                "and test data the same feature columns (select them with X[train_columns])."
            )

    def _numbers(self, X: pd.DataFrame) -> np.ndarray:
        try:
            return X[list(self.numeric)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"A numeric column holds non-numbers ({exc}). Convert it with "
                "pd.to_numeric, or declare it categorical."
            ) from exc

    def _categorical(self, column: pd.Series, name: str) -> pd.Categorical:
        """The column over its training levels; unseen levels become missing."""
        labels = _as_labels(column)
        return pd.Categorical(
            labels.where(labels.isin(self.levels[name])), categories=self.levels[name]
        )

    def transform(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """`(x_num float32, x_cat int64)` for the neural models, using training statistics only."""
        self.check_columns(X)
        raw = self._numbers(X)
        missing = np.isnan(raw)
        num = np.where(missing, self.fill, raw)
        if self.scaling == "quantile" and self.quantiles is not None:  # None: no numeric columns
            num = _quantile_normal(num, self.quantiles)
        elif self.scaling == "standard":
            num = (num - self.mean) / self.std
        flags = missing[:, [self.numeric.index(c) for c in self.indicators]].astype(np.float64)
        x_num = np.concatenate([num, flags], axis=1).astype(np.float32)
        x_cat = np.zeros((len(X), len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            codes = self._categorical(X[c], c).codes
            x_cat[:, j] = codes.astype(np.int64) + 1  # -1 (missing or unseen) becomes UNKNOWN = 0
        return x_num, x_cat

    def to_xgboost(self, X: pd.DataFrame) -> pd.DataFrame:
        """Raw numbers (NaN kept) and `category` columns over the training levels (unseen -> NaN)."""
        self.check_columns(X)
        out = pd.DataFrame(self._numbers(X), columns=list(self.numeric), index=X.index)
        for c in self.categorical:
            out[c] = self._categorical(X[c], c)
        return out[list(self.numeric) + list(self.categorical)]


def _as_labels(column: pd.Series) -> pd.Series:
    """Categorical values as strings, with missing values kept missing."""
    return (
        column.astype(object).where(column.notna(), None).map(lambda v: v if v is None else str(v))
    )


def _quantile_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map each column through its training quantiles to a standard normal (Gorishniy et al.)."""
    from scipy.special import ndtri

    levels = np.linspace(0.0, 1.0, len(quantiles))
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        q = quantiles[:, j]
        # average the left and right interpolation so that tied quantiles map to their middle
        u = 0.5 * (np.interp(x[:, j], q, levels) - np.interp(-x[:, j], -q[::-1], -levels[::-1]))
        out[:, j] = ndtri(np.clip(u, 1e-7, 1 - 1e-7))
    return out


def fit_preprocessor(
    X_train: pd.DataFrame,
    categorical: tuple[str, ...] | list[str] | None = None,
    scaling: str = "quantile",
    n_quantiles: int = 1000,
) -> Preprocessor:
    """Learn medians, scaling and categorical levels from the training rows `X_train` only."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}.")
    if len(X_train) < 2:
        raise ValueError(
            f"Fitting a preprocessor needs at least 2 training rows, got {len(X_train)}."
        )
    if categorical is None:
        categorical = [c for c in X_train.columns if not pd.api.types.is_numeric_dtype(X_train[c])]
    unknown = [c for c in categorical if c not in X_train.columns]
    if unknown:
        raise ValueError(f"Categorical columns {unknown} are not in the training data.")
    categorical = tuple(categorical)
    numeric = tuple(c for c in X_train.columns if c not in categorical)
    levels = {}
    for c in categorical:
        seen = pd.unique(_as_labels(X_train[c]).dropna())
        if len(seen) < 2:
            raise ValueError(
                f"The categorical column {c!r} has a single level ({', '.join(map(repr, seen)) or 'only missing values'}) "
                "in the training rows: it carries no information. Drop the column, or check that the "
                "training split was not filtered on it."
            )
        levels[c] = tuple(sorted(seen))

    pre = Preprocessor(
        numeric, categorical, np.zeros(0), (), scaling, np.zeros(0), np.ones(0), None, levels
    )
    raw = pre._numbers(X_train)
    all_missing = [c for c, m in zip(numeric, np.isnan(raw).all(0), strict=True) if m]
    if all_missing:
        raise ValueError(
            f"Numeric columns {all_missing} are missing in every training row; drop them."
        )
    missing = np.isnan(raw)
    pre.fill = np.nanmedian(raw, axis=0) if numeric else np.zeros(0)
    pre.indicators = tuple(c for c, m in zip(numeric, missing.any(0), strict=True) if m)
    filled = np.where(missing, pre.fill, raw)
    pre.mean = filled.mean(0)
    pre.std = np.where(filled.std(0) > 0, filled.std(0), 1.0)
    if scaling == "quantile" and numeric:
        pre.quantiles = np.quantile(
            filled, np.linspace(0, 1, min(n_quantiles, len(filled))), axis=0
        )
    return pre


@dataclass(frozen=True)
class Split:
    """Row indices of the train, validation and test parts of a table."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def make_split(
    table: Table, seed: int = 0, valid_fraction: float = 0.15, test_fraction: float = 0.2
) -> Split:
    """A seeded split, stratified for classification; a table's official test rows stay the test."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(table))
    strat = None if table.task == "regression" else table.y
    if table.is_test is not None:
        test, rest = rows[table.is_test], rows[~table.is_test]
    else:
        rest, test = train_test_split(
            rows, test_size=test_fraction, random_state=seed, stratify=strat
        )
    valid_size = valid_fraction / (1 - test_fraction) if table.is_test is None else valid_fraction
    train, valid = train_test_split(
        rest,
        test_size=valid_size,
        random_state=seed,
        stratify=None if strat is None else strat[rest],
    )
    return Split(np.sort(train), np.sort(valid), np.sort(test))
