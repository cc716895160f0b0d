"""Online image datasets for transfer learning: CIFAR-10 (binary version, read without pickle)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from dlnb.data.registry import DatasetSpec, RemoteFile, UrlSource, open_member, register

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# Published sha256 of the archive (the same value in TensorFlow Datasets' url checksums).
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue bytes


def parse_cifar_batch(blob: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 binary batch into images (N, 32, 32, 3) uint8 and labels (N,)."""
    if len(blob) == 0 or len(blob) % _RECORD:
        raise ValueError(
            f"{what} is truncated or not a CIFAR-10 binary batch: {len(blob)} bytes is "
            f"not a whole number of {_RECORD}-byte records. Delete it and download again."
        )
    records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(
            f"{what} has label {labels.max()}: CIFAR-10 labels are 0-9. The file is corrupt."
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _parse_cifar10(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    archive = paths["cifar-10-binary.tar.gz"]
    names = {f"data_batch_{i}.bin" for i in range(1, 6)} | {"test_batch.bin"}
    batches = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            base = Path(member.name).name
            if member.isfile() and base in names:
                batches[base] = parse_cifar_batch(
                    open_member(tar, member).read(), f"{archive}:{member.name}"
                )
    missing = sorted(names - set(batches))
    if missing:
        raise ValueError(f"{archive} lacks {missing}: it is not the CIFAR-10 binary archive.")
    train = [batches[f"data_batch_{i}.bin"] for i in range(1, 6)]
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": batches["test_batch.bin"][0],
        "y_test": batches["test_batch.bin"][1],
    }


CIFAR10 = register(
    DatasetSpec(
        name="cifar10",
        description="60,000 32x32 colour photographs in 10 classes (50,000 train, 10,000 test); online only.",
        licence="free for research (A. Krizhevsky, 2009, Learning Multiple Layers of Features from Tiny Images)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        sources=(
            UrlSource(
                (RemoteFile(CIFAR10_URL, CIFAR10_SHA256, "cifar-10-binary.tar.gz"),), _parse_cifar10
            ),
        ),
        checksums=None,
        expected_bytes=60_000 * (32 * 32 * 3 + 8),
    )
)
