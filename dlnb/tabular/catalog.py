"""The tabular catalogue: the synthetic default, scikit-learn's bundled tables, and downloads.

Offline: `tabular_synthetic` (generated), `breast_cancer` and `diabetes` (inside scikit-learn),
verified against pinned array checksums; `diamonds`, `insteval` and `slid` (real tables with
categoricals, from the pydataset package) are registered in `dlnb.tabular.rdatasets`. Online, verified by the sha256 of each download (the
published values, also used by scikit-learn's fetchers): `adult`, `california_housing`,
`covertype`. Each parser is unit-tested on small files in the original format.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

import dlnb.tabular.rdatasets  # noqa: F401  (registers diamonds, insteval, slid)
from dlnb.data.registry import (
    DatasetSpec,
    GeneratedSource,
    PackageSource,
    RemoteFile,
    UrlSource,
    open_member,
    register,
)
from dlnb.tabular.tables import Arrays, make_synthetic, table_arrays

# ----------------------------------------------------------------------------- bundled tables


def _breast_cancer() -> Arrays:
    from sklearn.datasets import load_breast_cancer

    b = load_breast_cancer()
    # scikit-learn codes malignant as 0; we make "malignant" the positive class (1).
    y = (b.target == 0).astype(np.int64)
    return table_arrays(
        b.data,
        b.feature_names,
        np.empty((len(y), 0)),
        [],
        y,
        "binary",
        classes=("benign", "malignant"),
    )


def _diabetes() -> Arrays:
    from sklearn.datasets import load_diabetes

    b = load_diabetes(scaled=False)
    names = list(b.feature_names)
    sex = names.index("sex")
    num = np.delete(b.data, sex, axis=1)
    cat = np.where(b.data[:, sex] == 1, "1", "2")[:, None]
    return table_arrays(
        num,
        [n for n in names if n != "sex"],
        cat,
        ["sex"],
        b.target,
        "regression",
        sensitive=("sex",),
    )


# ----------------------------------------------------------------------------- downloads

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
UCI_ADULT = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"


def _read_adult_file(path: Path) -> pd.DataFrame:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("|")]
    df = pd.read_csv(
        io.StringIO("\n".join(lines)),
        header=None,
        skipinitialspace=True,
        na_values="?",
        keep_default_na=False,
        dtype=str,
    )
    if df.shape[1] != len(ADULT_COLUMNS):
        raise ValueError(
            f"{path} has {df.shape[1]} columns, expected {len(ADULT_COLUMNS)} "
            "(the UCI adult format). Delete the file and download it again."
        )
    df.columns = list(ADULT_COLUMNS)
    df["income"] = df["income"].str.rstrip(".")  # adult.test writes ">50K." and "<=50K."
    bad = sorted(set(df["income"].dropna()) - {">50K", "<=50K"})
    if bad or df["income"].isna().any():
        raise ValueError(f"{path} has unexpected income labels {bad[:5]} or missing ones.")
    return df


def parse_adult(paths: dict[str, Path]) -> Arrays:
    """Parse UCI `adult.data` + `adult.test` into table arrays (`is_test` marks the official test)."""
    train, test = _read_adult_file(paths["adult.data"]), _read_adult_file(paths["adult.test"])
    df = pd.concat([train, test], ignore_index=True)
    cat_names = [c for c in ADULT_COLUMNS[:-1] if c not in ADULT_NUMERIC]
    num = df[list(ADULT_NUMERIC)].astype(np.float32).to_numpy()
    cat = df[cat_names].fillna("").to_numpy(dtype=str)
    y = (df["income"] == ">50K").to_numpy().astype(np.int64)
    is_test = np.r_[np.zeros(len(train), bool), np.ones(len(test), bool)]
    return table_arrays(
        num,
        ADULT_NUMERIC,
        cat,
        cat_names,
        y,
        "binary",
        sensitive=("sex", "race"),
        classes=("<=50K", ">50K"),
        is_test=is_test,
    )


CALIFORNIA_NAMES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)


def parse_california(paths: dict[str, Path]) -> Arrays:
    """Parse `cal_housing.tgz` exactly as scikit-learn's `fetch_california_housing` does."""
    with tarfile.open(paths["cal_housing.tgz"], mode="r:gz") as tar:
        raw = np.loadtxt(
            open_member(tar, "CaliforniaHousing/cal_housing.data"), delimiter=",", ndmin=2
        )
    if raw.shape[1] != 9:
        raise ValueError(f"cal_housing.data has {raw.shape[1]} columns, expected 9.")
    raw = raw[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]]
    target, data = raw[:, 0] / 100_000.0, raw[:, 1:].copy()
    data[:, 2] /= data[:, 5]  # rooms per household
    data[:, 3] /= data[:, 5]  # bedrooms per household
    data[:, 5] = data[:, 4] / data[:, 5]  # occupants per household
    return table_arrays(
        data, CALIFORNIA_NAMES, np.empty((len(target), 0)), [], target, "regression"
    )


COVTYPE_NUMERIC = (
    "Elevation",
    "Aspect",
    "Slope",
    "Horizontal_Distance_To_Hydrology",
    "Vertical_Distance_To_Hydrology",
    "Horizontal_Distance_To_Roadways",
    "Hillshade_9am",
    "Hillshade_Noon",
    "Hillshade_3pm",
    "Horizontal_Distance_To_Fire_Points",
)


def _one_hot_to_labels(block: np.ndarray, prefix: str) -> np.ndarray:
    labels = np.array([f"{prefix}{i}" for i in range(block.shape[1])] + [""])
    return labels[np.where(block.sum(1) == 1, block.argmax(1), block.shape[1])]


def parse_covtype(paths: dict[str, Path]) -> Arrays:
    """Parse `covtype.data.gz`; the one-hot wilderness and soil blocks become two categoricals."""
    with gzip.open(paths["covtype.data.gz"]) as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    if raw.shape[1] != 55:
        raise ValueError(f"covtype.data has {raw.shape[1]} columns, expected 55.")
    cat = np.stack(
        [_one_hot_to_labels(raw[:, 10:14], "area"), _one_hot_to_labels(raw[:, 14:54], "soil")],
        axis=1,
    )
    return table_arrays(
        raw[:, :10],
        COVTYPE_NUMERIC,
        cat,
        ["wilderness", "soil"],
        raw[:, 54] - 1,
        "multiclass",
        classes=tuple(str(i) for i in range(1, 8)),
    )


# ----------------------------------------------------------------------------- the catalogue

register(
    DatasetSpec(
        name="tabular_synthetic",
        description="20,000 synthetic rows (make_synthetic defaults, seed 0): 6 numeric, 2 categoricals "
        "of 100 levels with latent structure, a sensitive 'group'; binary target.",
        licence="CC0 (generated by dlnb)",
        homepage="dlnb/tabular/tables.py (make_synthetic)",
        sources=(GeneratedSource(make_synthetic),),
        checksums={
            "num": "091aab3ad5f393d22ae44bee66e39de759d352c8960c4d92d81dd0df65ecb6f2",
            "cat": "6a8e9a9b4d1ce25f6cfed232d54b28b69d1632ef980a5ab5166c7fd6726b97de",
            "y": "e229a2e7cfb5ab867a607d3424be02c802564b6e71338bc0934fa9e07cbc3a76",
        },
    )
)

register(
    DatasetSpec(
        name="breast_cancer",
        description="569 breast tumours, 30 numeric features, malignant vs benign (bundled with scikit-learn).",
        licence="CC BY 4.0 (UCI Breast Cancer Wisconsin (Diagnostic))",
        homepage="https://archive.ics.uci.edu/dataset/17",
        sources=(PackageSource("scikit-learn", _breast_cancer),),
        extra={
            "reference_accuracy": 0.96,
            "reference": "published XGBoost accuracies on WDBC are about 0.96-0.98 (e.g. 0.972 "
            "with 5-fold cross-validation)",
        },
        checksums={
            "num": "b0e0cd47e3f173fa4b9c5ea328e12c9254f1e14e1f7f36d27a22e7d1bb3bd664",
            "cat": "9b2c442420f2e9518c3dc1e537289a320c20a98e213c780c5469848b1e3e4ca0",
            "y": "9b722efa9d5168c53e229153b5ca149021968c9ae6df418917792161405fe71f",
        },
    )
)

register(
    DatasetSpec(
        name="diabetes",
        description="442 diabetes patients, 9 numeric features + sex, disease progression after a year "
        "(regression; bundled with scikit-learn).",
        licence="Public (Efron et al., 2004, Least Angle Regression)",
        homepage="https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html",
        sources=(PackageSource("scikit-learn", _diabetes),),
        checksums={
            "num": "4ef243bd8209e3a9241ba0963cb7ce9c5f52057770894f03651e14f1011adcd6",
            "cat": "5ec65514303ecf85629670926a40081423065ccb193b071d47d4a9269711e94a",
            "y": "3bc88d798f6f704b5d657ec13840878ffc67021e140bdfd385e134c6c6c5fcab",
        },
    )
)

register(
    DatasetSpec(
        name="adult",
        description="48,842 US census records (1994), income above $50K; official test split of 16,281.",
        licence="CC BY 4.0 (UCI Adult, Becker & Kohavi)",
        homepage="https://archive.ics.uci.edu/dataset/2/adult",
        extra={
            "reference_accuracy": 0.87,
            "reference": "tuned XGBoost on the Adult test split: about 0.87 (Gorishniy et al., "
            "2021, 'Revisiting Deep Learning Models for Tabular Data')",
        },
        sources=(
            UrlSource(
                files=(
                    RemoteFile(
                        UCI_ADULT + "adult.data",
                        "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
                        "adult.data",
                    ),
                    RemoteFile(
                        UCI_ADULT + "adult.test",
                        "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
                        "adult.test",
                    ),
                ),
                parse=parse_adult,
            ),
        ),
    )
)

register(
    DatasetSpec(
        name="california_housing",
        description="20,640 California districts (1990 census), median house value in $100,000 (regression).",
        licence="Public (Pace & Barry, 1997; StatLib)",
        homepage="https://www.dcc.fc.up.pt/~ltorgo/Regression/cal_housing.html",
        sources=(
            UrlSource(
                files=(
                    RemoteFile(
                        "https://ndownloader.figshare.com/files/5976036",
                        "aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681",
                        "cal_housing.tgz",
                    ),
                ),
                parse=parse_california,
            ),
        ),
    )
)

register(
    DatasetSpec(
        name="covertype",
        description="581,012 30x30 m forest cells, 7 cover types from cartographic variables.",
        licence="CC BY 4.0 (UCI Covertype, Blackard & Dean)",
        homepage="https://archive.ics.uci.edu/dataset/31/covertype",
        sources=(
            UrlSource(
                files=(
                    RemoteFile(
                        "https://ndownloader.figshare.com/files/5976039",
                        "614360d0257557dd1792834a85a1cdebfadc3c4f30b011d56afee7ffb5b15771",
                        "covtype.data.gz",
                    ),
                ),
                parse=parse_covtype,
            ),
        ),
    )
)
