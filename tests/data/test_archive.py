import gzip
import io
import json
import shutil
import subprocess
import tarfile
import zipfile

import numpy as np
import pytest

from dlnb.data import archive
from dlnb.data import registry as data
from dlnb.data.registry import ChecksumError


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """An archive of the `digits` dataset packed on a 'prepared machine', and its arrays."""
    home = tmp_path_factory.mktemp("prepared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLNB_DATA", str(home / "data"))
        path = archive.pack(home / "workshop.tar", ["digits"])
        arrays = data.load("digits")
    return path, arrays


def no_sources(monkeypatch):
    def fail(spec, source):
        raise AssertionError(f"{spec.name} must come from the restored cache")

    monkeypatch.setattr(data, "_from_source", fail)


def test_pack_then_unpack_restores_verified_data(packed, tmp_data_dir, monkeypatch):
    path, arrays = packed
    assert not data.cache_path("digits").exists()
    assert archive.unpack(path) == ["digits"]
    assert data.cache_path("digits").is_file()
    assert archive.verify(["digits"]) == {"digits": "ok"}
    no_sources(monkeypatch)
    restored = data.load("digits")
    assert restored["x"].shape == (1797, 8, 8) and restored["x"].dtype == np.float32
    assert restored["y"].dtype == np.int64
    assert all(np.array_equal(restored[k], arrays[k]) for k in arrays)


def test_the_archive_records_the_canonical_digests(packed):
    with tarfile.open(packed[0]) as tar:
        manifest = json.loads(tar.extractfile(archive.MANIFEST).read())
        assert sorted(tar.getnames()) == ["digits/digits.npz", archive.MANIFEST]
    assert manifest["datasets"]["digits"] == data.get_spec("digits").checksums


def test_pull_returns_verified_digests(packed, tmp_data_dir):
    assert archive.pull(["digits"]) == {"digits": data.get_spec("digits").checksums}
    assert data.cache_path("digits").exists()


@pytest.mark.parametrize("damage", ["random", "truncated_in_member", "truncated_header"])
def test_a_corrupt_archive_is_a_clear_error_and_restores_nothing(
    packed, tmp_data_dir, tmp_path, damage
):
    blob = packed[0].read_bytes()
    bad = tmp_path / "bad.tar"
    if damage == "random":
        bad.write_bytes(np.random.default_rng(0).bytes(len(blob)))
    elif damage == "truncated_in_member":
        bad.write_bytes(blob[: len(blob) // 2])
    else:
        bad.write_bytes(blob[:300])
    with pytest.raises(ChecksumError) as err:
        archive.unpack(bad)
    assert str(bad) in str(err.value)
    assert "corrupt or truncated: copy it again" in str(err.value)
    assert not data.cache_path("digits").exists()


def _tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_an_altered_dataset_in_an_archive_is_a_checksum_error(packed, tmp_data_dir, tmp_path):
    x, y = packed[1]["x"], packed[1]["y"]
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=np.roll(y, 1))
    manifest = json.dumps({"datasets": {"digits": {}}}).encode()
    bad = tmp_path / "altered.tar"
    _tar(bad, {"digits/digits.npz": buffer.getvalue(), archive.MANIFEST: manifest})
    with pytest.raises(ChecksumError) as err:
        archive.unpack(bad)
    assert "array 'y' of digits" in str(err.value) and "altered.tar" in str(err.value)
    assert err.value.expected == data.get_spec("digits").checksums["y"]
    assert not data.cache_path("digits").exists()


def test_archives_not_written_by_pack_are_rejected(tmp_data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist. Make one with"):
        archive.unpack(tmp_path / "nowhere.tar")
    _tar(tmp_path / "plain.tar", {"notes.txt": b"hello"})
    with pytest.raises(ValueError, match="not written by `dlnb data pack`"):
        archive.unpack(tmp_path / "plain.tar")
    manifest = json.dumps({"datasets": {"digits": {}}}).encode()
    _tar(tmp_path / "partial.tar", {archive.MANIFEST: manifest})
    with pytest.raises(ValueError, match="lists 'digits' but does not contain it"):
        archive.unpack(tmp_path / "partial.tar")


def test_verify_reports_ok_not_cached_and_failed(packed, tmp_data_dir):
    assert archive.verify(["digits"]) == {"digits": "not cached"}
    archive.unpack(packed[0])
    assert archive.verify(["digits"]) == {"digits": "ok"}
    path = data.cache_path("digits")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])  # truncated
    status = archive.verify(["digits"])["digits"]
    assert status.startswith("FAILED") and str(path) in status and "Delete" in status
    np.savez(path, x=packed[1]["x"] * 2, y=packed[1]["y"])  # readable, but not the canonical data
    status = archive.verify(["digits"])["digits"]
    assert status.startswith("FAILED") and "array 'x' of digits" in status


# --- issue 15: size limits, unpinned datasets, damaged manifests and sidecars ----------------------

DIGITS_MANIFEST = json.dumps({"datasets": {"digits": {}}}).encode()


def _npz_declaring(shape: tuple[int, ...], payload: int = 1000) -> bytes:
    """An npz whose one array's header declares `shape` (uint8) but holds only `payload` bytes."""
    from numpy.lib import format as npy_format

    header = io.BytesIO()
    npy_format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", header.getvalue() + bytes(payload))
    return buffer.getvalue()


def test_size_limit_follows_the_expected_size():
    spec = data.get_spec("digits")
    assert spec.expected_bytes == 1797 * 64 * 4 + 1797 * 8  # float32 images, int64 labels
    assert archive._size_limit(spec) == 2 * spec.expected_bytes + 2**20
    assert archive._size_limit(data.get_spec("mnist")) < 120 * 2**20
    unknown = data.DatasetSpec("unknown", "", "", "")
    assert archive._size_limit(unknown) == archive.DEFAULT_LIMIT


def test_an_npz_entry_declaring_too_many_bytes_is_refused_before_allocating(tmp_data_dir, tmp_path):
    # Issue 15 item 2: a small npz declaring 2e9 bytes drove memory past 4.5 GB.
    with pytest.raises(ValueError, match=r"declares \(2000000000,\) uint8"):
        archive._read_npz(_npz_declaring((2_000_000_000,)), 10**6, "bomb.npz")
    bad = tmp_path / "bomb.tar"
    _tar(
        bad, {"digits/digits.npz": _npz_declaring((50_000_000,)), archive.MANIFEST: DIGITS_MANIFEST}
    )
    with pytest.raises(ChecksumError, match=r"declares \(50000000,\) uint8; its arrays would"):
        archive.unpack(bad)
    assert not data.cache_path("digits").exists()
    small = io.BytesIO()
    np.savez(small, x=np.arange(3))
    assert archive._read_npz(small.getvalue(), 1000, "small.npz")["x"].tolist() == [0, 1, 2]


def test_a_member_larger_than_the_bound_is_refused_before_reading(tmp_data_dir, tmp_path):
    # Issue 15 item 2: a 1 MB tar.gz of zeros took 1.1 GB; it is refused from its header alone.
    bad = tmp_path / "zeros.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("digits/digits.npz")
        info.size = 20 * 2**20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
        info = tarfile.TarInfo(archive.MANIFEST)
        info.size = len(DIGITS_MANIFEST)
        tar.addfile(info, io.BytesIO(DIGITS_MANIFEST))
    assert bad.stat().st_size < 100_000
    with pytest.raises(ChecksumError, match="refused before reading: it declares 20,971,520 bytes"):
        archive.unpack(bad)


def test_a_64_gib_member_says_why_it_is_refused(tmp_data_dir, tmp_path):
    # Issue 15 item 2: today `unreadable ()`; the header alone is enough to refuse it.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("digits/digits.npz")
        info.size = 64 << 30
        tar.addfile(info)  # the header only: the archive ends there
    bad = tmp_path / "huge.tar.gz"
    bad.write_bytes(gzip.compress(raw.getvalue()[:-1024]))
    with pytest.raises(ChecksumError) as err:
        archive.unpack(bad)
    assert "digits/digits.npz" in str(err.value)
    assert "declares 68,719,476,736 bytes, over" in str(err.value)


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write a sparse member")
def test_a_sparse_member_is_refused(tmp_data_dir, tmp_path):
    # Issue 15 item 2: a 10 KB sparse 2 GiB member took 2.1 GB and 10 s before being refused.
    folder = tmp_path / "src"
    (folder / "digits").mkdir(parents=True)
    (folder / archive.MANIFEST).write_bytes(DIGITS_MANIFEST)
    with open(folder / "digits" / "digits.npz", "wb") as f:
        f.truncate(1 << 20)  # a hole: below the bound, so only sparseness refuses it
    bad = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-C", str(folder), "-cf", str(bad), "."], check=True
    )
    with tarfile.open(bad) as tar:
        assert any(m.issparse() for m in tar.getmembers())
    with pytest.raises(ChecksumError, match="refused before reading: a sparse member"):
        archive.unpack(bad)


def _unpinned(monkeypatch):
    """A dataset without pinned checksums, registered for one test."""
    spec = data.DatasetSpec(
        "tiny_unpinned",
        "a tiny test dataset",
        "CC0",
        "http://127.0.0.1/",
        (data.GeneratedSource(lambda: {"x": np.arange(6)}),),
    )
    data.names()
    monkeypatch.setitem(data._REGISTRY, spec.name, spec)
    return spec


def test_an_unpinned_dataset_is_restored_only_when_allowed_and_marked(
    tmp_data_dir, tmp_path, monkeypatch
):
    # Issue 15 item 3: the archive's own manifest was the only check, and `verify` said "ok".
    spec = _unpinned(monkeypatch)
    forged = {"x": np.arange(6) * 100}  # anything, with a manifest made to match
    buffer = io.BytesIO()
    np.savez(buffer, **forged)
    manifest = json.dumps({"datasets": {spec.name: spec.digest(forged)}}).encode()
    path = tmp_path / "forged.tar"
    _tar(path, {f"{spec.name}/{spec.name}.npz": buffer.getvalue(), archive.MANIFEST: manifest})
    with pytest.raises(ValueError, match="tiny_unpinned, which have no pinned checksums"):
        archive.unpack(path)
    assert not data.cache_path(spec.name).exists()
    assert archive.unpack(path, allow_unverified=True) == [spec.name]
    status = archive.verify([spec.name])[spec.name]
    assert status.startswith("ok (UNVERIFIED: restored from archive") and "forged.tar" in status
    data.cache_path(spec.name).unlink()
    data.load(spec.name)  # from its own source: checked against the digest recorded then
    assert archive.verify([spec.name])[spec.name].startswith("ok (no pinned checksums")


@pytest.mark.parametrize(
    "manifest", [b"\x00\xffnot json", b"[1]", b'{"datasets": ["digits"]}', b'{"datasets": 3}']
)
def test_a_manifest_that_is_not_the_expected_json_is_a_clear_error(
    tmp_data_dir, tmp_path, manifest
):
    bad = tmp_path / "bad-manifest.tar"
    _tar(bad, {archive.MANIFEST: manifest})
    with pytest.raises(ValueError, match="is not the JSON `pack` writes") as err:
        archive.unpack(bad)
    assert str(bad) in str(err.value) and "Pack the archive again" in str(err.value)


@pytest.mark.parametrize("sidecar", ["", "{not json", "[1, 2]", '{"x": 3}'])
def test_a_damaged_sidecar_fails_its_dataset_only(packed, tmp_data_dir, monkeypatch, sidecar):
    # Issue 15 item 11: an empty/garbage/list sidecar aborted `verify` for every dataset.
    spec = _unpinned(monkeypatch)
    data.load(spec.name)
    archive.unpack(packed[0])
    data.digest_path(spec.name).write_text(sidecar)
    results = archive.verify([spec.name, "digits"])
    assert results["digits"] == "ok"
    status = results[spec.name]
    assert status.startswith("FAILED") and str(data.digest_path(spec.name)) in status
    assert "then load the dataset again" in status
