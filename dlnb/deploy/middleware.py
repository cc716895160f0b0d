"""ASGI middleware for the inference service: a request-body limit (413) and Prometheus metrics."""

import json
import time

# Metrics label any other path "other", so scanners cannot blow up the label cardinality.
ROUTES = ("/predict", "/healthz", "/metrics")


class Guard:
    """Wraps an ASGI app: answers 413 to bodies over `max_body_bytes`, counts and times requests."""

    def __init__(self, app, max_body_bytes: int, metrics: dict):
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), {"code": 500}
        path = scope["path"] if scope["path"] in ROUTES else "other"

        async def send_and_watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _send_json(
                    send_and_watch,
                    413,
                    {
                        "detail": (
                            f"Request body larger than {self.max_body_bytes} bytes; send fewer samples per request."
                        )
                    },
                )
            elif body is False:
                status["code"] = 499  # the client went away before sending its body
            else:
                sent = False

                async def replay():
                    nonlocal sent
                    if sent:
                        return await receive()
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.app(scope, replay, send_and_watch)
        finally:
            self.metrics["requests"].labels(path, str(status["code"])).inc()
            self.metrics["latency"].labels(path).observe(time.perf_counter() - t0)

    async def _read_body(self, scope, receive) -> bytes | None | bool:
        """The whole body; None when it is over the limit; False when the client went away."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)


async def _send_json(send, status: int, content: dict) -> None:
    """Send a complete JSON response from ASGI middleware."""
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
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
