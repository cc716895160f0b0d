"""A bounded load test of the inference service: good traffic, a stream of bad inputs, slow clients.

    python benchmarks/serve_load.py [--clients 32] [--requests 1000] [--slow 100] [--server-args "..."]

Serves LeNet-5 (ONNX Runtime) with `python -m dlnb serve` in its own process on 127.0.0.1, then at
the same time: `requests` good requests from `clients` keep-alive clients (real MNIST digits,
every answer checked, `dlnb.deploy.bench.load_test`); a stream of bad requests (too-long integers,
arrays nested 2,000 and 100,000 deep, a 3 MiB body, the wrong content type, a body shorter than
its Content-Length, ragged and NaN inputs) from three threads, each checked for its expected 4xx; and `slow`
clients sending their request headers a byte at a time. Prints the good traffic's errors,
p50/p99 and throughput, the bad requests' unexpected outcomes, how many slow clients the
server cut off, and the server's RSS before, at its peak and after.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve_batching import _server  # noqa: E402

from dlnb import deploy, vision  # noqa: E402
from dlnb.models import LeNet5  # noqa: E402


def bad_requests(sample: list) -> list[tuple[str, bytes, str, int]]:
    """(name, body, content type, expected status) for each kind of bad input."""
    deep = 100_000
    return [
        ("5000-digit integer", b'{"inputs": [' + b"9" * 5000 + b"]}", "application/json", 400),
        (
            "nested 2000 deep",
            b'{"inputs": ' + b"[" * 2000 + b"]" * 2000 + b"}",
            "application/json",
            400,
        ),
        (
            "nested 100000 deep",
            b'{"inputs": ' + b"[" * deep + b"]" * deep + b"}",
            "application/json",
            400,
        ),
        ("3 MiB body", b"[" + b"0," * (3 * 2**19) + b"0]", "application/json", 413),
        ("text/plain", json.dumps({"inputs": [sample]}).encode(), "text/plain", 415),
        ("ragged", json.dumps({"inputs": [sample, [0.0]]}).encode(), "application/json", 422),
        (
            "NaN",
            json.dumps({"inputs": [np.full_like(sample, np.nan).tolist()]}).encode(),
            "application/json",
            422,
        ),
    ]


def _http(port: int, head: bytes, body: bytes, timeout: float = 30.0) -> str:
    """Send one raw request; the status code, or the exception's name."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(head + body)
            return s.recv(12)[9:12].decode() or "closed"
    except OSError as e:
        return type(e).__name__


def bad_stream(port: int, kinds: list, stop: threading.Event, out: Counter) -> None:
    """Send `kinds` of bad requests in turn until `stop`; count those not answered as expected."""
    while not stop.is_set():
        for name, body, ctype, want in kinds:
            head = (
                f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body) if name != 'short body' else 100}\r\n\r\n"
            ).encode()
            got = _http(port, head, body)
            out["sent"] += 1
            if got != str(want):
                out[f"{name}: {got}"] += 1


def slow_client(port: int, hold_s: float, out: Counter) -> None:
    """Send request headers a byte every 0.2 s for up to `hold_s`; count whether the server cut it off."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            t0 = time.monotonic()
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 10_000:
                if time.monotonic() - t0 > hold_s:
                    out["still open"] += 1
                    return
                s.sendall(bytes([byte]))
                time.sleep(0.2)
    except OSError:
        out["cut off by the server"] += 1


def sample_rss(process: psutil.Process, stop: threading.Event, seen: list[int]) -> None:
    """Append the RSS of `process` to `seen` every 0.1 s until `stop`."""
    while not stop.is_set():
        seen.append(process.memory_info().rss)
        time.sleep(0.1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--slow", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads in the server")
    p.add_argument(
        "--server-args",
        default="--header-timeout-s 2 --body-timeout-s 2",
        help="extra `python -m dlnb serve` options",
    )
    a = p.parse_args()
    torch.manual_seed(0)
    x, _ = vision.mnist_tensors("test", subset=512, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = deploy.export_onnx(LeNet5().eval(), x[:2], Path(tmp) / "lenet5.onnx")
        expected = deploy.as_numpy_fn(deploy.ort_session(path))(x.numpy()).argmax(1)
        proc, url = _server(path, a.threads, shlex.split(a.server_args))
        port, server = int(url.rsplit(":", 1)[1]), psutil.Process(proc.pid)
        try:
            rss_before = server.memory_info().rss
            deploy.load_test(url, x.numpy(), expected=expected, clients=4, requests=50)  # warm-up
            bad, slow, stop, peak = Counter(), Counter(), threading.Event(), [rss_before]
            hold_s = 10.0
            kinds = bad_requests(x[0].tolist())
            short = [("short body", b"{", "application/json", 408)]  # Content-Length: 100
            threads = [
                *(
                    threading.Thread(target=bad_stream, args=(port, k, stop, bad))
                    for k in (kinds, kinds, short)
                ),
                *(
                    threading.Thread(target=slow_client, args=(port, hold_s, slow))
                    for _ in range(a.slow)
                ),
            ]
            for t in threads:
                t.start()
            sampler = threading.Thread(target=sample_rss, args=(server, stop, peak))
            sampler.start()
            good = deploy.load_test(
                url, x.numpy(), expected=expected, clients=a.clients, requests=a.requests
            )
            stop.set()
            for t in [*threads, sampler]:
                t.join()
            rss_after = server.memory_info().rss
        finally:
            proc.terminate()
            proc.wait(30)
    mb = 2**20
    print(
        f"good: {good['requests']} requests from {good['clients']} clients, "
        f"{good['errors']} errors, {good['wrong']} wrong, p50 {good['p50_ms']:.1f} ms, "
        f"p99 {good['p99_ms']:.1f} ms, {good['throughput_rps']:.0f} req/s"
    )
    if good["errors"]:
        print(f"  error examples: {good['error_examples']}")
    unexpected = {k: v for k, v in bad.items() if k != "sent"}
    print(f"bad: {bad['sent']} requests, {sum(unexpected.values())} unexpected: {unexpected}")
    print(f"slow: {a.slow} clients, {dict(slow)} (held for up to {hold_s:g} s)")
    print(
        f"server RSS: before {rss_before / mb:.0f} MB, peak {max(peak) / mb:.0f} MB, "
        f"after {rss_after / mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
