import io
import json
import tarfile

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
