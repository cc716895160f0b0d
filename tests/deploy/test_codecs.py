"""Bodies of the inference service: npy checked from its header, images checked before decoding, answers by Accept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlnb.deploy import codecs

SHAPE = (1, 4, 4)


def _x(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, *SHAPE)).astype(np.float32)


def test_npy_round_trip_is_exact_and_reads_the_body_without_a_copy():
    body = codecs.encode_npy(_x())
    x = codecs.decode_npy(body, SHAPE)
    np.testing.assert_array_equal(x, _x())
    assert x.base is not None and not x.flags.writeable  # a view of the body's bytes


def test_fortran_ordered_npy_reads_the_same_values():
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(_x()))
    assert b"'fortran_order': True" in buffer.getvalue()[:128]
    np.testing.assert_array_equal(codecs.decode_npy(buffer.getvalue(), SHAPE), _x())


@pytest.mark.parametrize(
    "body, error, words",
    [
        (codecs.encode_npy(_x().astype(np.float64)), TypeError, "holds float64, not float32"),
        (codecs.encode_npy(_x().astype(np.int32)), TypeError, "holds int32"),
        (codecs.encode_npy(_x()[:, 0]), ValueError, "shape [3, 4, 4]"),
        (codecs.encode_npy(_x(0)), ValueError, "shape [0, 1, 4, 4]"),
        (codecs.encode_npy(_x())[:-4], ValueError, "truncated"),
        (codecs.encode_npy(_x()) + b"\0" * 4, ValueError, "truncated or padded"),
        (codecs.encode_npy(_x())[:30], ValueError, "not a valid npy file"),
        (b'{"inputs": []}', ValueError, "not a valid npy file"),
        (codecs.encode_npy(np.full((1, *SHAPE), np.nan, np.float32)), ValueError, "NaN"),
    ],
)
def test_bad_npy_bodies_are_refused_with_a_reason(body, error, words):
    with pytest.raises(error, match=None) as e:
        codecs.decode_npy(body, SHAPE)
    assert words in str(e.value)


def test_an_object_npy_is_refused_without_unpickling():
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TypeError, match="holds object"):
        codecs.decode_npy(buffer.getvalue(), SHAPE)


def test_images_are_preprocessed_like_the_training_data():
    pixels = np.zeros((8, 8), np.uint8)
    pixels[:, 4:] = 255
    prep = codecs.image_preprocessor(SHAPE, mean=0.5, std=0.5)
    x = codecs.decode_image(codecs.encode_image(pixels), prep)
    assert x.shape == (1, *SHAPE) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, :, 0], -1.0)  # black: (0 - 0.5) / 0.5
    np.testing.assert_allclose(x[0, 0, :, -1], 1.0)  # white: (1 - 0.5) / 0.5
    rgb = codecs.image_preprocessor((3, 4, 4), mean=(0, 0, 0), std=(1, 1, 1))
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 255
    y = codecs.decode_image(codecs.encode_image(colour, "JPEG"), rgb)
    assert y.shape == (1, 3, 4, 4) and y[0, 0].mean() > 0.9 > 0.1 > y[0, 2].mean()


def test_image_bodies_that_are_not_images_or_too_large_are_refused():
    prep = codecs.image_preprocessor(SHAPE)
    with pytest.raises(ValueError, match="not a readable PNG or JPEG"):
        codecs.decode_image(b"GIF89a not really", prep)
    with pytest.raises(ValueError, match="not a readable PNG or JPEG"):
        codecs.decode_image(codecs.encode_image(np.zeros((8, 8), np.uint8))[:40], prep)
    big = codecs.encode_image(np.zeros((100, 100), np.uint8))
    with pytest.raises(codecs.TooLarge, match="100x100 pixels"):
        codecs.decode_image(big, prep, max_pixels=99 * 100)
    assert codecs.decode_image(big, prep, max_pixels=100 * 100).shape == (1, *SHAPE)
    with pytest.raises(ValueError, match="1 or 3"):
        codecs.image_preprocessor((2, 4, 4))


def test_decode_request_dispatches_on_the_media_type():
    x = _x()
    np.testing.assert_array_equal(codecs.decode_request(codecs.NPY, codecs.encode_npy(x), SHAPE), x)
    np.testing.assert_array_equal(
        codecs.decode_request(codecs.JSON, json.dumps({"inputs": x.tolist()}).encode(), SHAPE), x
    )
    with pytest.raises(codecs.Undecodable, match="not valid JSON"):
        codecs.decode_request(codecs.JSON, b"{", SHAPE)
    with pytest.raises(TypeError, match="not images"):
        codecs.decode_request(codecs.PNG, codecs.encode_image(np.zeros((4, 4), np.uint8)), SHAPE)


def test_answers_are_npy_when_accepted_else_json():
    out = np.array([[0.1, 0.9], [2.0, -1.0]], np.float32)
    body, media = codecs.encode_response(out, "application/x-npy")
    assert media == codecs.NPY
    np.testing.assert_array_equal(codecs.decode_npy(body, (2,)), out)
    for accept in (None, "*/*", "application/json"):
        body, media = codecs.encode_response(out, accept)
        assert media == codecs.JSON and json.loads(body)["predictions"] == [1, 0]
    assert codecs.media_type("Application/JSON; charset=utf-8") == "application/json"
    assert codecs.media_type(None) == ""
