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


def request(app, chunks, path="/predict", declared=None, disconnect=False):
    """One HTTP request through a Guard of `app` (limit LIMIT bytes), its body sent in `chunks`.

    Returns the messages the Guard sent, how many messages it received and its metrics.
    """
    metrics = make_metrics()
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
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
    asyncio.run(Guard(app, LIMIT, metrics)(scope, receive, send))
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


def test_a_declared_body_over_the_limit_is_refused_unread():
    calls: list = []
    sent, received, metrics = request(echo_app(calls), [b"x" * 11], declared=11)
    assert calls == [] and received == 0, "the app is not called and the body is not read"
    start, body = sent
    assert start["status"] == 413
    assert (b"content-type", b"application/json") in start["headers"]
    assert (b"connection", b"close") in start["headers"]
    assert (b"content-length", str(len(body["body"])).encode()) in start["headers"]
    assert json.loads(body["body"]) == {
        "detail": f"Request body larger than {LIMIT} bytes; send fewer samples per request."
    }
    assert count(metrics, "/predict", "413") == 1 and count(metrics, "/predict", "200") is None


def test_a_streamed_body_over_the_limit_is_refused_once_it_passes_it():
    calls: list = []
    chunks = [b"x" * 6, b"x" * 6, b"x" * 6]
    sent, received, metrics = request(echo_app(calls), chunks)  # no Content-Length
    assert calls == [] and received == 2, "reading stops at the chunk that passes the limit"
    assert sent[0]["status"] == 413 and count(metrics, "/predict", "413") == 1


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
