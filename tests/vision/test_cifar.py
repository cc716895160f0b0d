import dataclasses
import hashlib
import io
import tarfile

import numpy as np
import pytest

from dlnb.data import registry as data
from dlnb.data.registry import ChecksumError, RemoteFile, UrlSource
from dlnb.vision.cifar import CIFAR10, parse_cifar_batch


def batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10's binary record layout: a label byte, then the red, green and blue planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels[:, None].astype(np.uint8), planes], axis=1).tobytes()


def tiny_archive(rng) -> tuple[bytes, dict[str, np.ndarray]]:
    buf, expected = io.BytesIO(), {"x_train": [], "y_train": []}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, 3)
            blob = batch_bytes(images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            if name == "test_batch.bin":
                expected["x_test"], expected["y_test"] = images, labels
            else:
                expected["x_train"].append(images)
                expected["y_train"].append(labels)
    expected["x_train"] = np.concatenate(expected["x_train"])
    expected["y_train"] = np.concatenate(expected["y_train"])
    return buf.getvalue(), expected


def _register_download(server, blob: bytes, monkeypatch) -> None:
    """Register CIFAR-10 for this test with one source: the archive on `server`, pinned to `blob`."""
    remote = RemoteFile(
        server.url("cifar-10-binary.tar.gz"),
        hashlib.sha256(blob).hexdigest(),
        "cifar-10-binary.tar.gz",
    )
    source = UrlSource((remote,), CIFAR10.sources[0].parse)
    data.names()
    monkeypatch.setitem(data._REGISTRY, "cifar10", dataclasses.replace(CIFAR10, sources=(source,)))


def test_a_batch_round_trips_and_truncation_is_named():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), np.array([0, 3, 9, 1])
    x, y = parse_cifar_batch(batch_bytes(images, labels), "batch")
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    with pytest.raises(ValueError, match="truncated or not a CIFAR-10 binary batch"):
        parse_cifar_batch(batch_bytes(images, labels)[:-5], "batch")


def test_cifar10_downloads_parses_and_caches_through_the_registry(
    tmp_data_dir, local_http_server, monkeypatch
):
    blob, expected = tiny_archive(np.random.default_rng(1))
    (local_http_server.root / "cifar-10-binary.tar.gz").write_bytes(blob)
    _register_download(local_http_server, blob, monkeypatch)
    arrays = data.load("cifar10")
    for key, value in expected.items():
        assert np.array_equal(arrays[key], value), key
    assert data.cache_path("cifar10").exists() and data.digest_path("cifar10").exists()
    test = data.load("cifar10", split="test")
    assert sorted(test) == ["x", "y"] and np.array_equal(test["x"], expected["x_test"])


def test_a_wrong_archive_is_refused(tmp_data_dir, local_http_server, monkeypatch):
    blob, _ = tiny_archive(np.random.default_rng(2))
    (local_http_server.root / "cifar-10-binary.tar.gz").write_bytes(blob[:-100])
    _register_download(local_http_server, blob, monkeypatch)
    with pytest.raises(ChecksumError, match="cifar-10-binary.tar.gz"):
        data.load("cifar10")
    assert not data.cache_path("cifar10").exists()
