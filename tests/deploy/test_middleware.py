"""dlnb.deploy.middleware: the body limit answers 413 without calling the app; requests are counted."""

from __future__ import annotations

import asyncio
import json

import pytest

from dlnb.deploy.middleware import Guard, make_metrics

LIMIT = 10


def echo_app(calls: list):
    """An ASGI app answering 200 with the body it received; `calls` gets each scope type."""

    async def app(scope, receive, send):
        calls.append(scope["type"])
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def request(app, chunks, path="/predict", declared=None, disconnect=False, headers=(), **guard):
    """One HTTP request through a Guard of `app` (limit LIMIT bytes, `guard` options), its body
    sent in `chunks`.

    Returns the messages the Guard sent, how many messages it received and its metrics.
    """
    metrics = make_metrics()
    headers = [
        *headers,
        *([] if declared is None else [(b"content-length", str(declared).encode())]),
    ]
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if disconnect:
        incoming[-1]["more_body"] = True
        incoming.append({"type": "http.disconnect"})
    sent, received = [], []

    async def receive():
        received.append(incoming[0])
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": headers}
    asyncio.run(Guard(app, LIMIT, metrics, **guard)(scope, receive, send))
    return sent, len(received), metrics


def count(metrics: dict, path: str, status: str) -> float | None:
    """The request counter of (path, status), None when never counted."""
    labels = {"path": path, "status": status}
    return metrics["registry"].get_sample_value("dlnb_http_requests_total", labels)


def test_a_body_within_the_limit_reaches_the_app_whole():
    calls: list = []
    sent, _, metrics = request(echo_app(calls), [b"ab", b"cd", b"efghij"], declared=LIMIT)
    assert calls == ["http"]
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"abcdefghij"  # exactly the limit
    assert count(metrics, "/predict", "200") == 1
    latency = metrics["registry"].get_sample_value(
        "dlnb_request_latency_seconds_count", {"path": "/predict"}
    )
    assert latency == 1


def test_a_declared_body_over_the_limit_is_drained_then_refused():
    calls: list = []
    sent, received, metrics = request(echo_app(calls), [b"x" * 5, b"x" * 6], declared=11)
    assert calls == [] and received == 2, "the app is not called; the body is read and dropped"
    start, body = sent
    assert start["status"] == 413
    assert (b"content-type", b"application/json") in start["headers"]
    assert (b"connection", b"close") not in start["headers"], "all read: the connection can stay"
    assert (b"content-length", str(len(body["body"])).encode()) in start["headers"]
    assert json.loads(body["body"]) == {
        "detail": f"Request body larger than {LIMIT} bytes; send fewer samples per request."
    }
    assert count(metrics, "/predict", "413") == 1 and count(metrics, "/predict", "200") is None


def test_a_streamed_body_over_the_limit_is_refused_once_it_passes_it():
    calls: list = []
    chunks = [b"x" * 6, b"x" * 6, b"x" * 6]
    sent, received, metrics = request(echo_app(calls), chunks)  # no Content-Length
    assert calls == [] and received == 3, "the rest is drained after the chunk past the limit"
    assert sent[0]["status"] == 413 and count(metrics, "/predict", "413") == 1


@pytest.mark.parametrize(
    ("headers", "guard"),
    [((), {"drain_bytes": 5}), (((b"expect", b"100-continue"),), {})],
    ids=["too-large-to-drain", "expect-100-continue"],
)
def test_a_body_not_worth_draining_is_refused_unread_and_the_connection_closed(headers, guard):
    sent, received, metrics = request(
        echo_app([]), [b"x" * 11], declared=11, headers=headers, **guard
    )
    assert received == 0 and sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed():
    incoming = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive():
        if incoming:
            return incoming.pop()
        await asyncio.sleep(3600)  # Content-Length promised more than the client sends

    sent: list = []

    async def send(message):
        sent.append(message)

    metrics = make_metrics()
    scope = {"type": "http", "path": "/predict", "headers": [(b"content-length", b"5")]}
    asyncio.run(Guard(echo_app([]), LIMIT, metrics, body_timeout_s=0.05)(scope, receive, send))
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"did not arrive within 0.05 s" in sent[1]["body"]
    assert count(metrics, "/predict", "408") == 1


def test_requests_past_max_pending_get_503_with_retry_after():
    release = asyncio.Event()

    async def held(scope, receive, send):
        await receive()
        if scope["path"] == "/predict":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    metrics = make_metrics()
    guard = Guard(held, LIMIT, metrics, max_pending=1)

    async def one(sent: list, path: str = "/predict") -> None:
        scope = {"type": "http", "path": path, "headers": []}

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            sent.append(message)

        await guard(scope, receive, send)

    async def main() -> tuple[list, list, list]:
        first, second, health = [], [], []
        task = asyncio.create_task(one(first))
        await asyncio.sleep(0.01)  # the first request is with the app
        await one(second)  # answered at once
        await one(health, "/healthz")  # not queued behind the model
        release.set()
        await task
        return first, second, health

    first, second, health = asyncio.run(main())
    assert health[0]["status"] == 200
    assert first[0]["status"] == 200 and guard.pending == 0
    assert second[0]["status"] == 503 and (b"retry-after", b"1") in second[0]["headers"]
    assert b"busy (1 requests queued)" in second[1]["body"]


def test_a_client_that_goes_away_is_counted_as_499_and_gets_no_answer():
    calls: list = []
    sent, _, metrics = request(echo_app(calls), [b"abc"], disconnect=True)
    assert calls == [] and sent == []
    assert count(metrics, "/predict", "499") == 1


@pytest.mark.parametrize(
    ("path", "label"),
    [("/healthz", "/healthz"), ("/metrics", "/metrics"), ("/wp-admin/x.php", "other")],
)
def test_paths_outside_the_routes_share_one_label(path, label):
    _, _, metrics = request(echo_app([]), [b""], path=path)
    assert count(metrics, label, "200") == 1


def test_a_failing_app_is_counted_as_500_and_its_error_propagates():
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    metrics = make_metrics()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        raise AssertionError("nothing may be sent")

    scope = {"type": "http", "path": "/predict", "headers": []}
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(Guard(broken, LIMIT, metrics)(scope, receive, send))
    assert count(metrics, "/predict", "500") == 1


def test_other_scopes_pass_through_uncounted():
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], await receive()))

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        pass

    metrics = make_metrics()
    asyncio.run(Guard(app, LIMIT, metrics)({"type": "lifespan"}, receive, send))
    assert seen == [("lifespan", {"type": "lifespan.startup"})]
    families = {m.name: m.samples for m in metrics["registry"].collect()}
    assert families["dlnb_http_requests"] == []


def test_each_app_gets_metrics_of_its_own():
    a, b = make_metrics(), make_metrics()  # the same names twice: separate registries
    a["requests"].labels("/predict", "200").inc()
    a["batch"].observe(3)
    assert count(a, "/predict", "200") == 1 and count(b, "/predict", "200") is None
    assert a["registry"].get_sample_value("dlnb_batch_size_sum") == 3
    assert b["registry"].get_sample_value("dlnb_batch_size_sum") == 0
    names = {m.name for m in a["registry"].collect()}
    assert names == {
        "dlnb_http_requests",
        "dlnb_request_latency_seconds",
        "dlnb_batch_size",
        "dlnb_inference_seconds",
    }
