"""A client for the inference service: send samples as npy or JSON, or an image file; read either answer."""

from __future__ import annotations

import io
import json

import numpy as np

from dlnb.deploy import codecs

SENDS = ("npy", "json", "png", "jpeg")


class ServiceError(RuntimeError):
    """The service answered with an error status; `.status` and `.detail` say which and why."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"The service answered {status}: {detail}")
        self.status, self.detail = status, detail


def request_body(inputs, send: str = "npy") -> tuple[bytes, str]:
    """(body, Content-Type) for `inputs`: float samples (n, *shape) as npy or JSON, or uint8 pixels
    (H, W) or (H, W, 3) as a PNG or JPEG file (bytes of an image file are sent as they are)."""
    if isinstance(inputs, (bytes, bytearray)):
        kind = codecs.PNG if bytes(inputs[:4]) == b"\x89PNG" else codecs.JPEG
        return bytes(inputs), kind
    if send == "npy":
        return codecs.encode_npy(np.asarray(inputs, np.float32)), codecs.NPY
    if send == "json":
        return json.dumps({"inputs": np.asarray(inputs, np.float32).tolist()}).encode(), codecs.JSON
    if send in ("png", "jpeg"):
        return codecs.encode_image(inputs, send.upper()), f"image/{send}"
    raise ValueError(f"send must be one of {SENDS}, got {send!r}.")


def predict(
    url: str,
    inputs,
    *,
    send: str = "npy",
    receive: str = "npy",
    client=None,
    timeout: float = 30.0,
) -> dict:
    """POST `inputs` to `url`/predict; returns {"outputs": float array (n, classes), "predictions": top-1}.

    `send` picks the body (see `request_body`), `receive` the answer's format ("npy" or "json");
    pass an `httpx.Client` to reuse its connection. An error answer raises ServiceError."""
    import httpx

    if receive not in ("npy", "json"):
        raise ValueError(f"receive must be 'npy' or 'json', got {receive!r}.")
    body, content_type = request_body(inputs, send)
    headers = {
        "content-type": content_type,
        "accept": codecs.NPY if receive == "npy" else codecs.JSON,
    }
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        r = client.post(f"{url.rstrip('/')}/predict", content=body, headers=headers)
    finally:
        if own:
            client.close()
    if r.status_code != 200:
        try:
            detail = r.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = r.text[:500]
        raise ServiceError(r.status_code, str(detail))
    if codecs.media_type(r.headers.get("content-type")) == codecs.NPY:
        outputs = np.load(io.BytesIO(r.content), allow_pickle=False)
    else:
        outputs = np.asarray(r.json()["outputs"], np.float32)
    return {"outputs": outputs, "predictions": outputs.argmax(-1)}
