"""The batching inference service: correctness under load, bad input, limits, shutdown, CLI (python -m dlnb serve)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from torch import nn

from dlnb.deploy import bench, codecs, serve
from dlnb.deploy import export as deploy

SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory):
    """A small classifier exported to ONNX, inputs with clear top-1 margins, and their expected classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    path = deploy.export_onnx(
        model, torch.zeros(2, *SHAPE), tmp_path_factory.mktemp("serve") / "linear.onnx"
    )
    x = np.random.default_rng(0).normal(size=(512, *SHAPE)).astype(np.float32)
    logits = deploy.as_numpy_fn(deploy.ort_session(path))(x)
    top2 = np.sort(logits, axis=1)[:, -2:]
    x = x[top2[:, 1] - top2[:, 0] > 1e-3][
        :256
    ]  # no near-ties: batched and single runs must agree on top-1
    expected = deploy.as_numpy_fn(deploy.ort_session(path))(x).argmax(1)
    assert (
        len(np.unique(expected)) >= 5
    )  # answers differ from request to request, so mix-ups would show
    return path, x, expected


def _metric(text: str, name: str, labels: dict | None = None) -> float:
    """One sample's value from Prometheus text, parsed with prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in (labels or {}).items()
            ):
                return sample.value
    raise KeyError(name)


@pytest.mark.slow
def test_1000_requests_from_32_clients_all_answered_correctly(model_onnx):
    path, x, expected = model_onnx
    with serve.start(path, max_batch_size=32, max_wait_ms=2) as service:
        result = bench.load_test(service.url, x, expected=expected, clients=32, requests=1000)
        metrics = httpx.get(f"{service.url}/metrics").text
    assert result["errors"] == 0, result["error_examples"]
    assert result["wrong"] == 0
    assert (
        _metric(metrics, "dlnb_http_requests_total", {"path": "/predict", "status": "200"}) == 1000
    )
    assert _metric(metrics, "dlnb_request_latency_seconds_count", {"path": "/predict"}) == 1000
    assert (
        _metric(metrics, "dlnb_batch_size_sum") == 1000
    )  # every sample went through the model once
    assert (
        _metric(metrics, "dlnb_batch_size_count") < 1000
    )  # ... in fewer calls: requests were batched


BAD_REQUESTS = [
    (b'{"inputs": [[[0.1, 0.2', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2, 3]", 422, '{"inputs"'),
    (
        json.dumps({"inputs": np.zeros((2, 1, 28, 27)).tolist()}).encode(),
        422,
        "shape [2, 1, 28, 27]",
    ),
    (json.dumps({"inputs": np.zeros((1, 28, 28)).tolist()}).encode(), 422, "shape [n, 1, 28, 28]"),
    (json.dumps({"inputs": [[[["a"] * 28] * 28]]}).encode(), 422, "only numbers, got strings"),
    (json.dumps({"inputs": [[[[True] * 28] * 28]]}).encode(), 422, "only numbers, got booleans"),
    (json.dumps({"inputs": [[[0.0] * 28] * 27 + [[0.0] * 5]]}).encode(), 422, "ragged"),
    (json.dumps({"inputs": [[[[float("nan")] * 28] * 28]]}).encode(), 422, "NaN or infinite"),
    (json.dumps({"inputs": []}).encode(), 422, "shape [0]"),
]


@pytest.mark.slow
def test_bad_requests_get_4xx_while_good_requests_keep_succeeding(model_onnx):
    path, x, expected = model_onnx
    with serve.start(path, max_body_bytes=100_000) as service:
        good: dict = {}
        load = threading.Thread(
            target=lambda: good.update(
                bench.load_test(service.url, x, expected=expected, clients=8, requests=300)
            )
        )
        load.start()
        answers = []
        with httpx.Client(base_url=service.url, timeout=30) as client:
            for body, status, message in BAD_REQUESTS * 3:
                r = client.post(
                    "/predict", content=body, headers={"content-type": "application/json"}
                )
                answers.append((r.status_code, status, message, r.json()["detail"]))
            big = json.dumps(
                {"inputs": np.full((20, *SHAPE), 0.123456789).tolist()}
            ).encode()  # ~220 kB
            assert len(big) > 200_000
            r = client.post("/predict", content=big)
            answers.append((r.status_code, 413, "larger than 100000 bytes", r.json()["detail"]))
            r = client.post(
                "/predict", content=iter([big[:60_000], big[60_000:]])
            )  # chunked, no Content-Length
            answers.append((r.status_code, 413, "larger than 100000 bytes", r.json()["detail"]))
        load.join()
        healthy = httpx.get(f"{service.url}/healthz").json()
        metrics = httpx.get(f"{service.url}/metrics").text
    for got, want, message, detail in answers:
        assert got == want and message in detail, (got, want, detail)
    assert good["errors"] == 0 and good["wrong"] == 0, good["error_examples"]
    assert healthy["status"] == "ok"
    assert _metric(metrics, "dlnb_http_requests_total", {"path": "/predict", "status": "413"}) == 2
    assert _metric(metrics, "dlnb_http_requests_total", {"path": "/predict", "status": "422"}) == 24


def test_parse_inputs_accepts_numbers_and_casts_them():
    x = codecs.parse_inputs({"inputs": [[[1, 2], [3, 4]]]}, (2, 2))
    assert x.dtype == np.float32 and x.shape == (1, 2, 2) and x.sum() == 10


@pytest.mark.slow
def test_clean_shutdown_answers_the_requests_in_flight():
    entered = threading.Event()

    def slow_double(batch: np.ndarray) -> np.ndarray:
        entered.set()
        time.sleep(0.2)
        return batch * 2

    service = serve.start(slow_double, sample_shape=(3,), max_batch_size=1)
    results: dict[int, httpx.Response] = {}

    def call(i: int) -> None:
        results[i] = httpx.post(f"{service.url}/predict", json={"inputs": [[i, i, i]]}, timeout=30)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    assert entered.wait(10)
    time.sleep(0.3)  # the other requests are queued behind the first one
    service.stop()  # returns once they have all been answered
    assert not service.thread.is_alive()
    assert len(results) == 6
    for i, r in results.items():
        assert r.status_code == 200 and r.json()["outputs"] == [[2 * i] * 3]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/healthz")


def test_healthz_metrics_and_loopback_default():
    assert serve.ServeConfig().host == "127.0.0.1"
    with serve.start(
        lambda a: a.sum(1, keepdims=True), sample_shape=(4,), max_batch_size=8
    ) as service:
        assert service.url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{service.url}/healthz").json()
        r = httpx.post(f"{service.url}/predict", json={"inputs": [[1, 2, 3, 4], [0, 0, 0, 1]]})
        text = httpx.get(f"{service.url}/metrics").text
    assert health == {
        "status": "ok",
        "model": "function",
        "sample_shape": [4],
        "max_batch_size": 8,
        "max_wait_ms": 2.0,
    }
    assert r.json() == {"outputs": [[10.0], [1.0]], "predictions": [0, 0]}
    assert "# TYPE dlnb_request_latency_seconds histogram" in text
    assert (
        _metric(text, "dlnb_batch_size_bucket", {"le": "2.0"}) == 1
    )  # the one call, with 2 samples
    assert _metric(text, "dlnb_http_requests_total", {"path": "/healthz", "status": "200"}) == 1


def test_start_explains_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="port already in use"):
            serve.start(lambda a: a, sample_shape=(1,), port=taken.getsockname()[1])


def test_in_memory_models_need_a_sample_shape():
    with pytest.raises(ValueError, match="sample_shape"):
        serve.start(lambda a: a)


def test_a_failing_model_answers_500_and_the_service_recovers():
    calls = []

    def flaky(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    with (
        serve.start(flaky, sample_shape=(2,)) as service,
        httpx.Client(base_url=service.url) as client,
    ):
        failed = client.post("/predict", json={"inputs": [[1, 2]]})
        assert failed.status_code == 500 and "RuntimeError: boom" in failed.json()["detail"]
        assert client.post("/predict", json={"inputs": [[1, 2]]}).json()["outputs"] == [[1.0, 2.0]]


@pytest.mark.slow
def test_command_line_serves_and_stops_cleanly_on_sigterm(
    model_onnx, free_port, launch_server, tmp_path
):
    path, x, expected = model_onnx
    url, log = f"http://127.0.0.1:{free_port}", tmp_path / "serve.log"
    root = Path(__file__).resolve().parents[2]
    proc = launch_server(
        [
            sys.executable,
            "-m",
            "dlnb",
            "serve",
            "--model",
            str(path),
            "--port",
            str(free_port),
            "--max-batch-size",
            "4",
        ],
        f"{url}/healthz",
        log,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    health = httpx.get(f"{url}/healthz").json()
    r = httpx.post(f"{url}/predict", json={"inputs": x[:3].tolist()})
    assert health["max_batch_size"] == 4 and health["sample_shape"] == list(SHAPE)
    assert r.json()["predictions"] == expected[:3].tolist()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    out = log.read_text()
    # uvicorn finishes its graceful shutdown, then re-raises the signal (the Unix convention)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert url in out and "Application shutdown complete" in out


JSON = {"content-type": "application/json"}
UNDECODABLE = [
    (b'{"inputs": [[' + b"9" * 5000 + b", 1, 1, 1]]}", "number JSON cannot decode"),
    (b'{"inputs": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nests arrays too deeply"),
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests arrays too deeply"),
]


def _port(service: serve.ServerHandle) -> int:
    return int(service.url.rsplit(":", 1)[1])


def test_undecodable_bodies_answer_400_on_a_connection_that_stays_open():
    import http.client

    with serve.start(lambda a: a, sample_shape=(4,)) as service:
        conn = http.client.HTTPConnection("127.0.0.1", _port(service), timeout=10)
        conn.connect()
        sock = conn.sock
        for body, message in UNDECODABLE:
            conn.request("POST", "/predict", body=body, headers=JSON)
            r = conn.getresponse()
            detail = json.loads(r.read())["detail"]
            assert r.status == 400 and message in detail, (r.status, detail)
            assert conn.sock is sock, "the keep-alive connection must survive a bad body"
        conn.request("POST", "/predict", body=b'{"inputs": [[1, 2, 3, 4]]}', headers=JSON)
        assert conn.getresponse().status == 200
        conn.close()


def test_a_client_still_sending_an_over_limit_body_gets_the_413():
    with serve.start(lambda a: a, sample_shape=(4,), max_body_bytes=100_000) as service:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", _port(service)), timeout=10) as s:
                s.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % (3 * 2**20)
                )
                for _ in range(48):  # 3 MiB, still arriving after the server has answered
                    s.sendall(b"x" * 65536)
                    time.sleep(0.002)
                assert s.recv(12) == b"HTTP/1.1 413"


def test_the_body_must_be_declared_json():
    with (
        serve.start(lambda a: a, sample_shape=(2,)) as service,
        httpx.Client(base_url=service.url) as client,
    ):
        body = b'{"inputs": [[1, 2]]}'
        for content_type, status in [
            ("text/plain", 415),
            (None, 415),
            ("application/json; charset=utf-8", 200),
        ]:
            headers = {"content-type": content_type} if content_type else {}
            r = client.post("/predict", content=body, headers=headers)
            assert r.status_code == status, (content_type, r.text)
            if status == 415:
                assert "application/json, application/x-npy" in r.json()["detail"]


def test_slow_headers_are_cut_off_and_a_short_body_times_out_with_408():
    with serve.start(
        lambda a: a, sample_shape=(2,), header_timeout_s=0.5, body_timeout_s=0.5
    ) as service:
        address = ("127.0.0.1", _port(service))
        with socket.create_connection(address, timeout=10) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
            t0 = time.monotonic()
            assert slow.recv(100) == b"", "the server closes the connection"
            assert time.monotonic() - t0 < 5
        with socket.create_connection(address, timeout=10) as short:
            short.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            answer = b"".join(iter(lambda: short.recv(1000), b""))  # until the server closes
        assert answer.startswith(b"HTTP/1.1 408") and b"Content-Length larger" in answer
        assert httpx.get(f"{service.url}/healthz").status_code == 200


def test_a_full_queue_answers_503_with_retry_after():
    def slow(batch: np.ndarray) -> np.ndarray:
        time.sleep(0.5)
        return batch

    with serve.start(slow, sample_shape=(1,), max_batch_size=1, max_pending=1) as service:
        first: dict = {}
        t = threading.Thread(
            target=lambda: first.update(
                r=httpx.post(f"{service.url}/predict", json={"inputs": [[1]]})
            )
        )
        t.start()
        time.sleep(0.2)
        busy = httpx.post(f"{service.url}/predict", json={"inputs": [[2]]})
        t.join()
    assert first["r"].status_code == 200
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in busy.json()["detail"]


async def _keep_alive_burst(port: int, clients: int, each: int) -> list[str]:
    """`clients` keep-alive connections sending `each` requests; what became of every request."""
    import asyncio

    body = b'{"inputs": [[1, 2, 3, 4]]}'
    request = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    async def client() -> list[str]:
        seen: list[str] = []
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return ["refused"]
        while len(seen) < each:
            try:
                writer.write(request)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (OSError, asyncio.IncompleteReadError):
                return [*seen, "read error"]  # sent, and never answered
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            seen.append(head[9:12].decode())
            if b"connection: close" in head.lower():
                writer.close()
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except ConnectionRefusedError:
                    return [*seen, "refused"]
        writer.close()
        return seen

    return [x for xs in await asyncio.gather(*(client() for _ in range(clients))) for x in xs]


def test_stopping_answers_every_request_already_sent():
    import asyncio

    def model(batch: np.ndarray) -> np.ndarray:
        time.sleep(0.002)
        return batch

    service = serve.start(model, sample_shape=(4,), max_batch_size=8)
    outcome: list[str] = []
    burst = threading.Thread(
        target=lambda: outcome.extend(asyncio.run(_keep_alive_burst(_port(service), 64, 40)))
    )
    burst.start()
    time.sleep(0.5)
    service.stop()
    burst.join(60)
    assert "read error" not in outcome, {x: outcome.count(x) for x in set(outcome)}
    assert "200" in outcome and "refused" in outcome, "stopped in the middle of the burst"
