"""The tabular catalogue (dlnb.tabular.catalog): offline tables, and the download parsers.

The parsers of Adult, California housing and Covertype are exercised through the registry's real
download path (`dlnb.data.registry.load` -> `download` -> sha256 check -> parse -> cache) against small
files written here in the original formats and served from a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile

import numpy as np
import pandas as pd
import pytest

from dlnb.data import registry as data
from dlnb.data.registry import ChecksumError, RemoteFile, UrlSource
from dlnb.tabular.tables import load_table


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DLNB_DATA", str(tmp_path / "data"))


# ----------------------------------------------------------------------------- catalogue


@pytest.mark.parametrize("name", ["tabular_synthetic", "breast_cancer", "diabetes"])
def test_offline_tables_load_verified_and_cached(name):
    assert name in data.names()
    table = load_table(name)
    assert data.cache_path(name).exists()
    again = load_table(name)  # from the cache, verified again
    pd.testing.assert_frame_equal(table.X, again.X)
    assert len(table) == len(table.y) > 400
    assert set(table.categorical) <= set(table.X.columns)


def test_bundled_tables_have_the_documented_content():
    bc = load_table("breast_cancer")
    assert bc.X.shape == (569, 30) and bc.classes == ("benign", "malignant")
    assert int(bc.y.sum()) == 212  # malignant tumours in WDBC
    diabetes = load_table("diabetes")
    assert diabetes.task == "regression" and diabetes.sensitive == ("sex",)
    assert set(diabetes.X["sex"]) == {"1", "2"}


def test_a_corrupt_cache_is_refused(tmp_path):
    load_table("breast_cancer")
    path = data.cache_path("breast_cancer")
    arrays = dict(np.load(path))
    arrays["y"] = 1 - arrays["y"]
    np.savez(path, **arrays)
    with pytest.raises(ChecksumError, match="array 'y'"):
        load_table("breast_cancer")


# ----------------------------------------------------------------------------- downloads


ADULT_ROWS = [
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K",
    "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K",
    "38, ?, 215646, HS-grad, 9, Divorced, ?, Not-in-family, Black, Female, 0, 0, 40, ?, <=50K",
]


ADULT_TEST_ROWS = [
    "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.",
    "44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, United-States, >50K.",
]


def _adult_files() -> dict[str, bytes]:
    return {
        "adult.data": ("\n".join(ADULT_ROWS) + "\n\n").encode(),
        "adult.test": ("|1x3 Cross validator\n" + "\n".join(ADULT_TEST_ROWS) + "\n").encode(),
    }


def _california_files() -> dict[str, bytes]:
    # longitude, latitude, age, rooms, bedrooms, population, households, income, value
    rows = np.array(
        [
            [-122.23, 37.88, 41, 880, 129, 322, 126, 8.3252, 452600],
            [-122.22, 37.86, 21, 7099, 1106, 2401, 1138, 8.3014, 358500],
        ]
    )
    text = "\n".join(",".join(f"{v:g}" for v in r) for r in rows).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("CaliforniaHousing/cal_housing.data")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return {"cal_housing.tgz": buf.getvalue()}


def _covtype_files() -> dict[str, bytes]:
    rows = []
    for i, (area, soil, label) in enumerate([(0, 28, 5), (2, 11, 2), (3, 39, 7)]):
        numeric = [2596 + i, 51, 3, 258, 0, 510, 221, 232, 148, 6279]
        rows.append(
            numeric + list(np.eye(4, dtype=int)[area]) + list(np.eye(40, dtype=int)[soil]) + [label]
        )
    text = "\n".join(",".join(map(str, r)) for r in rows).encode()
    return {"covtype.data.gz": gzip.compress(text)}


def _local_copy(
    monkeypatch, name: str, files: dict[str, bytes], server, corrupt: str | None = None
) -> str:
    """Register `name`'s real spec and parser under a new name, downloading from `server`."""
    spec = data.get_spec(name)
    remote = []
    for filename, content in files.items():
        (server.root / filename).write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        remote.append(
            RemoteFile(server.url(filename), "0" * 64 if filename == corrupt else digest, filename)
        )
    local = dataclasses.replace(
        spec, name=f"{name}_local", sources=(UrlSource(tuple(remote), spec.sources[0].parse),)
    )
    monkeypatch.setitem(data._REGISTRY, local.name, local)
    return local.name


def test_adult_downloads_and_parses(local_http_server, monkeypatch):
    assert {f.sha256 for f in data.get_spec("adult").sources[0].files} == {
        "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
        "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    }
    name = _local_copy(monkeypatch, "adult", _adult_files(), local_http_server)
    t = load_table(name)
    assert len(t) == 5 and list(t.y) == [0, 1, 0, 0, 1]
    assert list(t.is_test) == [False, False, False, True, True]
    assert t.X.loc[0, "age"] == 39 and t.X.loc[4, "capital-gain"] == 7688
    assert pd.isna(t.X.loc[2, "workclass"]) and pd.isna(t.X.loc[2, "native-country"])
    assert t.X.loc[3, "education"] == "11th" and t.sensitive == ("sex", "race")
    assert (data.data_dir() / name / "raw" / "adult.test").exists()


def test_california_downloads_and_parses_like_scikit_learn(local_http_server, monkeypatch):
    name = _local_copy(monkeypatch, "california_housing", _california_files(), local_http_server)
    t = load_table(name)
    assert t.task == "regression" and t.X.shape == (2, 8)
    np.testing.assert_allclose(t.y, [4.526, 3.585], rtol=1e-6)
    np.testing.assert_allclose(t.X["AveRooms"], [880 / 126, 7099 / 1138], rtol=1e-6)
    np.testing.assert_allclose(t.X["AveOccup"], [322 / 126, 2401 / 1138], rtol=1e-6)
    np.testing.assert_allclose(t.X["MedInc"], [8.3252, 8.3014], rtol=1e-6)
    np.testing.assert_allclose(t.X["Longitude"], [-122.23, -122.22], rtol=1e-6)


def test_covertype_downloads_and_parses_one_hot_blocks_into_categoricals(
    local_http_server, monkeypatch
):
    name = _local_copy(monkeypatch, "covertype", _covtype_files(), local_http_server)
    t = load_table(name)
    assert t.task == "multiclass" and list(t.y) == [4, 1, 6] and len(t.classes) == 7
    assert list(t.X["wilderness"]) == ["area0", "area2", "area3"]
    assert list(t.X["soil"]) == ["soil28", "soil11", "soil39"]
    assert list(t.X["Elevation"]) == [2596, 2597, 2598]


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(local_http_server, monkeypatch):
    name = _local_copy(
        monkeypatch, "adult", _adult_files(), local_http_server, corrupt="adult.test"
    )
    with pytest.raises(ChecksumError, match="adult.test"):
        load_table(name)
    raw = data.data_dir() / name / "raw"
    assert not (raw / "adult.test").exists() and not list(raw.glob("*.part"))
    assert not data.cache_path(name).exists()


def test_a_malformed_adult_file_is_a_clear_error(local_http_server, monkeypatch):
    files = _adult_files()
    files["adult.data"] = b"39, State-gov, 77516\n"
    name = _local_copy(monkeypatch, "adult", files, local_http_server)
    with pytest.raises(data.DatasetUnavailable, match="expected 15"):
        load_table(name)
