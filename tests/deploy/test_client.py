"""The service's client, and the service's binary bodies end to end: npy and images in, npy or JSON out."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from torch import nn

from dlnb.deploy import bench, client, codecs, serve

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def service():
    """A small classifier served with image preprocessing (pixels in [0, 1]) and a 64x64 image bound."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    prep = codecs.image_preprocessor(SHAPE)
    with serve.start(
        model, sample_shape=SHAPE, preprocess=prep, max_image_pixels=64 * 64
    ) as handle:
        yield handle, serve.as_numpy_fn(model)


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, *SHAPE)).astype(np.float32)


@pytest.mark.parametrize("send", ["npy", "json"])
@pytest.mark.parametrize("receive", ["npy", "json"])
def test_outputs_match_the_model_whatever_the_formats(service, send, receive):
    handle, fn = service
    x = _x(5)
    answer = client.predict(handle.url, x, send=send, receive=receive)
    np.testing.assert_allclose(answer["outputs"], fn(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(answer["predictions"], fn(x).argmax(1))


def test_an_image_is_preprocessed_by_the_service(service):
    handle, fn = service
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8), dtype=np.uint8)
    expected = fn(pixels[None, None].astype(np.float32) / 255)
    with httpx.Client() as http:
        for send in ("png", "jpeg"):
            answer = client.predict(handle.url, pixels, send=send, client=http)
            tol = 1e-5 if send == "png" else 0.5  # JPEG is lossy
            np.testing.assert_allclose(answer["outputs"], expected, atol=tol)
        png = codecs.encode_image(pixels)
        answer = client.predict(handle.url, png, client=http)  # a file's bytes, sent as they are
        np.testing.assert_allclose(answer["outputs"], expected, atol=1e-5)


def _npy_with(x) -> bytes:
    return codecs.encode_npy(x)


@pytest.mark.parametrize(
    "content_type, body, status, words",
    [
        (codecs.NPY, _npy_with(_x(2).astype(np.float64)), 422, "float64, not float32"),
        (codecs.NPY, _npy_with(_x(2)[:, 0]), 422, "shape [2, 8, 8]"),
        (codecs.NPY, _npy_with(_x(2))[:-10], 422, "truncated"),
        (codecs.NPY, b"\x93NUMPY", 422, "not a valid npy file"),
        (codecs.PNG, b"%PDF-1.4 not an image", 422, "not a readable PNG or JPEG"),
        (codecs.JPEG, _npy_with(_x(1)), 422, "not a readable PNG or JPEG"),
        (codecs.PNG, codecs.encode_image(np.zeros((65, 64), np.uint8)), 413, "64x65 pixels"),
        ("image/gif", b"GIF89a", 415, "application/x-npy, image/png, image/jpeg"),
    ],
)
def test_bad_binary_bodies_get_4xx_and_the_service_keeps_serving(
    service, content_type, body, status, words
):
    handle, fn = service
    with httpx.Client(base_url=handle.url) as http:
        r = http.post("/predict", content=body, headers={"content-type": content_type})
        assert r.status_code == status, r.text
        assert words in r.json()["detail"]
        ok = client.predict(handle.url, _x(1), client=http)
    np.testing.assert_array_equal(ok["predictions"], fn(_x(1)).argmax(1))


def test_a_body_over_the_byte_limit_is_413_before_decoding():
    with serve.start(lambda a: a[:, 0], sample_shape=(2, 2), max_body_bytes=1000) as handle:
        with pytest.raises(client.ServiceError) as e:
            client.predict(handle.url, np.zeros((100, 2, 2), np.float32))
    assert e.value.status == 413 and "larger than 1000 bytes" in e.value.detail


def test_images_are_refused_when_the_service_has_no_preprocessing():
    with serve.start(lambda a: a[:, 0, 0], sample_shape=SHAPE) as handle:
        with pytest.raises(client.ServiceError) as e:
            client.predict(handle.url, np.zeros((8, 8), np.uint8), send="png")
    assert e.value.status == 422 and "not images" in e.value.detail


def test_load_test_drives_npy_and_image_bodies(service):
    handle, fn = service
    x = _x(64)
    result = bench.load_test(
        handle.url, x, expected=fn(x).argmax(1), clients=4, requests=64, send="npy"
    )
    assert result["errors"] == 0 and result["wrong"] == 0, result["error_examples"]
    pixels = np.random.default_rng(3).integers(0, 256, (16, 8, 8), dtype=np.uint8)
    expected = fn(pixels[:, None].astype(np.float32) / 255).argmax(1)
    result = bench.load_test(
        handle.url, pixels, expected=expected, clients=4, requests=32, send="png"
    )
    assert result["errors"] == 0 and result["wrong"] == 0, result["error_examples"]


def test_request_body_refuses_unknown_formats():
    with pytest.raises(ValueError, match="send must be one of"):
        client.request_body(_x(1), "pickle")
    with pytest.raises(ValueError, match="receive must be"):
        client.predict("http://127.0.0.1:9", _x(1), receive="xml")
