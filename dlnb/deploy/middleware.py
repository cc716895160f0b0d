"""ASGI middleware for the inference service: body limit (413), body read timeout (408), a bounded
queue (503 + Retry-After), and Prometheus metrics."""

import asyncio
import json
import time

# Metrics label any other path "other", so scanners cannot blow up the label cardinality.
ROUTES = ("/predict", "/healthz", "/metrics")
TOO_LARGE, TOO_SLOW, GONE = "too large", "too slow", "gone"


class Guard:
    """Wraps an ASGI app: answers 413 to bodies over `max_body_bytes` (draining up to `drain_bytes`
    of them for at most `drain_s`, so the client reads the answer instead of a connection reset),
    408 to bodies not received within `body_timeout_s`, and 503 + Retry-After to /predict when
    `max_pending` of them are already waiting for the app; counts and times requests."""

    def __init__(
        self,
        app,
        max_body_bytes: int,
        metrics: dict,
        max_pending: int | None = None,
        body_timeout_s: float | None = None,
        drain_bytes: int = 64 * 2**20,
        drain_s: float = 5.0,
    ):
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics
        self.max_pending, self.body_timeout_s = max_pending, body_timeout_s
        self.drain_bytes, self.drain_s = drain_bytes, drain_s
        self.pending = 0  # requests with a complete body, handed to the app and not yet answered

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), {"code": 500}
        path = scope["path"] if scope["path"] in ROUTES else "other"
        queued = path == "/predict"  # /healthz and /metrics stay answerable under overload

        async def send_and_watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body == TOO_LARGE:
                drained = await self._drain(scope, receive)
                detail = f"Request body larger than {self.max_body_bytes} bytes; send fewer samples per request."
                await _send_json(send_and_watch, 413, {"detail": detail}, close=not drained)
            elif body == TOO_SLOW:
                detail = (
                    f"The request body did not arrive within {self.body_timeout_s:g} s "
                    "(is Content-Length larger than the body?); send the whole body at once."
                )
                await _send_json(send_and_watch, 408, {"detail": detail}, close=True)
            elif body == GONE:
                status["code"] = 499  # the client went away before sending its body
            elif queued and self.max_pending is not None and self.pending >= self.max_pending:
                detail = f"The service is busy ({self.pending} requests queued); retry in a second."
                await _send_json(send_and_watch, 503, {"detail": detail}, retry_after=1)
            else:
                sent = False

                async def replay():
                    nonlocal sent
                    if sent:
                        return await receive()
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                self.pending += queued
                try:
                    await self.app(scope, replay, send_and_watch)
                finally:
                    self.pending -= queued
        finally:
            self.metrics["requests"].labels(path, str(status["code"])).inc()
            self.metrics["latency"].labels(path).observe(time.perf_counter() - t0)

    async def _read_body(self, scope, receive) -> bytes | str:
        """The whole body, or TOO_LARGE, TOO_SLOW (past `body_timeout_s`) or GONE (client left)."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return TOO_LARGE

        async def collect() -> bytes | str:
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return GONE
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body_bytes:
                    return TOO_LARGE
                more = message.get("more_body", False)
            return b"".join(chunks)

        try:
            return await asyncio.wait_for(collect(), self.body_timeout_s)
        except asyncio.TimeoutError:
            return TOO_SLOW

    async def _drain(self, scope, receive) -> bool:
        """Read and discard the rest of a refused body (at most `drain_bytes`, `drain_s`); True when
        all of it was read, so closing the connection sends FIN, not a reset that loses the answer."""
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if headers.get(b"expect", b"").lower() == b"100-continue":
            return False  # the client waits for our answer before sending the body
        if declared.isdigit() and int(declared) > self.drain_bytes:
            return False

        async def discard() -> bool:
            size = 0
            while size <= self.drain_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
            return False

        try:
            return await asyncio.wait_for(discard(), self.drain_s)
        except asyncio.TimeoutError:
            return False


async def _send_json(
    send, status: int, content: dict, close: bool = False, retry_after: int | None = None
) -> None:
    """Send a complete JSON response from ASGI middleware."""
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make_metrics() -> dict:
    """Prometheus metrics in a registry of their own (one per app, so several apps can coexist)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return {
        "registry": registry,
        "requests": Counter(
            "dlnb_http_requests",
            "HTTP requests by path and status code.",
            ["path", "status"],
            registry=registry,
        ),
        "latency": Histogram(
            "dlnb_request_latency_seconds",
            "Request latency, body read to response sent.",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        ),
        "batch": Histogram(
            "dlnb_batch_size",
            "Samples per model call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=registry,
        ),
        "inference": Histogram(
            "dlnb_inference_seconds",
            "Model call duration per batch.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=registry,
        ),
    }
