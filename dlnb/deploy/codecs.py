"""Request and response bodies of the inference service: JSON, npy (`numpy.save`) and image files.

Binary bodies skip the JSON path that dominates a small model's cost per request: an npy body
is checked (dtype, shape, length) from its header and read without a copy; an image is checked
for its pixel count before it is decoded, then preprocessed like the model's training data.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib import format as fmt

JSON, NPY, PNG, JPEG = "application/json", "application/x-npy", "image/png", "image/jpeg"
IMAGE_TYPES = (PNG, JPEG)
MEDIA_TYPES = (JSON, NPY, *IMAGE_TYPES)
MAX_IMAGE_PIXELS = 4096 * 4096

Preprocess = Callable[["object"], np.ndarray]  # a PIL image -> one float32 sample


class TooLarge(ValueError):
    """A body whose content is larger than the service accepts (answered 413)."""


class Undecodable(ValueError):
    """A body that cannot be decoded at all (answered 400; a decoded body of the wrong kind is 422)."""


def decode_request(
    media: str,
    body: bytes,
    shape: tuple[int, ...],
    preprocess: Preprocess | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """A float32 batch (n, *shape) from a body of one of MEDIA_TYPES (`media` as `media_type` gives it).

    Raises Undecodable (400), TooLarge (413), ValueError or TypeError (422)."""
    if media == NPY:
        return decode_npy(body, shape)
    if media in IMAGE_TYPES:
        if preprocess is None:
            raise TypeError(f"This model's inputs {list(shape)} are not images; send npy or JSON.")
        return decode_image(body, preprocess, max_pixels)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Undecodable(f'The body is not valid JSON ({e}); send {{"inputs": [...]}}.') from None
    except ValueError as e:  # an integer too long to convert
        raise Undecodable(
            f"The body holds a number JSON cannot decode ({e}); send ordinary numbers."
        ) from None
    except RecursionError:
        raise Undecodable(
            'The body nests arrays too deeply to decode; send {"inputs": [...]}.'
        ) from None
    return parse_inputs(payload, shape)


def parse_inputs(payload, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a decoded `{"inputs": [...]}` body against a per-sample shape; return float32 (n, *shape)."""
    want = f"a list of samples, each of shape {list(shape)}"
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise ValueError(f'The body must be a JSON object {{"inputs": ...}} holding {want}.')
    try:
        x = np.asarray(payload["inputs"])
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"inputs is ragged ({e}); send {want}.") from None
    if x.dtype.kind not in "iuf":
        kind = (
            "strings"
            if x.dtype.kind in "US"
            else "booleans"
            if x.dtype.kind == "b"
            else "mixed or out-of-range values"
        )
        raise TypeError(f"inputs must hold only numbers, got {kind}; send {want}.")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape) or len(x) == 0:
        raise ValueError(
            f"inputs has shape {list(x.shape)}; send {want} (shape [n, {', '.join(map(str, shape))}])."
        )
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("inputs contains NaN or infinite values; send finite numbers.")
    return x


def encode_response(outputs: np.ndarray, accept: str | None) -> tuple[bytes, str]:
    """(body, media type) of the answer: the outputs as npy when `accept` asks for application/x-npy,
    else JSON `{"outputs": [...], "predictions": [...]}` (top-1 classes)."""
    if accept and NPY in accept.lower():
        return encode_npy(outputs), NPY
    answer = {"outputs": outputs.tolist(), "predictions": outputs.argmax(-1).tolist()}
    return json.dumps(answer).encode(), JSON


def media_type(header: str | None) -> str:
    """The bare, lower-case media type of a Content-Type or Accept header value ('' if absent)."""
    return (header or "").split(",")[0].split(";")[0].strip().lower()


def decode_npy(body: bytes, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    """An npy body holding (n, *shape) samples of `dtype`, checked from its header, read without a copy."""
    want = f"a {dtype} array of shape [n, {', '.join(map(str, shape))}] saved with numpy.save"
    version = body[6:8]
    width = {b"\x01\x00": 2, b"\x02\x00": 4}.get(version, 0)  # bytes of the header length
    end = 8 + width + int.from_bytes(body[8 : 8 + width], "little") if width else 0
    try:
        if body[:6] != fmt.MAGIC_PREFIX or not width:
            raise ValueError(f"no npy magic and version 1 or 2 (got {body[:8]!r})")
        if len(body) < end:
            raise ValueError(f"the header is cut short at {len(body)} bytes")
        got_shape, fortran, got_dtype = _npy_header(body[:end])
    except (ValueError, SyntaxError, EOFError) as e:
        raise ValueError(f"The body is not a valid npy file ({e}); send {want}.") from None
    if got_dtype != np.dtype(dtype):
        raise TypeError(f"The npy body holds {got_dtype}, not {dtype}; send {want}.")
    if len(got_shape) != len(shape) + 1 or tuple(got_shape[1:]) != tuple(shape) or not got_shape[0]:
        raise ValueError(f"The npy body has shape {list(got_shape)}; send {want}.")
    size = int(np.prod(got_shape)) * got_dtype.itemsize
    if len(body) - end != size:
        raise ValueError(
            f"The npy body holds {len(body) - end} data bytes, its header promises {size} "
            f"(truncated or padded?); send {want}."
        )
    x = np.frombuffer(body, got_dtype, offset=end)
    x = x.reshape(got_shape[::-1]).T if fortran else x.reshape(got_shape)
    if not np.isfinite(x).all():
        raise ValueError("The npy body contains NaN or infinite values; send finite numbers.")
    return x


@functools.lru_cache(maxsize=256)
def _npy_header(header: bytes) -> tuple:
    """(shape, fortran order, dtype) of an npy header, parsed by numpy as a literal (never evaluated,
    never unpickled); cached, since a client sends the same header with every request (numpy
    refuses headers over 10,000 bytes, which bounds the cache)."""
    f = io.BytesIO(header)
    version = fmt.read_magic(f)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    return read(f)


def encode_npy(x: np.ndarray) -> bytes:
    """An array as an npy body (what `numpy.save` writes)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(x), allow_pickle=False)
    return buffer.getvalue()


def image_preprocessor(
    shape: tuple[int, ...],
    mean: Sequence[float] | float = 0.0,
    std: Sequence[float] | float = 1.0,
) -> Preprocess:
    """Decoded image -> float32 sample of `shape` (C, H, W): grey or RGB, resized, in [0, 1], then
    (x - mean) / std per channel: pass the statistics the model was trained with."""
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"Images need a (1 or 3, H, W) sample shape, got {list(shape)}.")
    channels, height, width = shape
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)

    def preprocess(image) -> np.ndarray:
        from PIL import Image

        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        x = np.asarray(image, np.float32) / 255.0
        x = x[None] if channels == 1 else x.transpose(2, 0, 1)
        return ((x - m) / s).astype(np.float32)

    return preprocess


def decode_image(
    body: bytes, preprocess: Preprocess, max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """A PNG or JPEG body as a batch of one preprocessed sample; the pixel count is checked before
    decoding (TooLarge), so a small file that decompresses to a huge image is refused cheaply."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(body))
        if image.format not in ("PNG", "JPEG"):
            raise ValueError(f"a {image.format} image")
        width, height = image.size
        if width * height > max_pixels:
            raise TooLarge(
                f"The image is {width}x{height} pixels, over the {max_pixels:,} accepted; "
                "send a smaller image."
            )
        image.load()
    except TooLarge:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"The body is not a readable PNG or JPEG image ({e}).") from None
    return preprocess(image)[None]


def encode_image(pixels: np.ndarray, format: str = "PNG") -> bytes:
    """uint8 pixels (H, W) or (H, W, 3) as a PNG or JPEG file's bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format=format)
    return buffer.getvalue()
