"""Throughput of the inference service with dynamic batching against without, at 32 concurrent clients.

    python benchmarks/serve_batching.py [--clients 32] [--requests 2000] [--rounds 3]

Serves LeNet-5 (ONNX Runtime) with `python -m dlnb serve` in a separate process, once with
`--no-batching` and once with `--max-batch-size 32`, alternating over `rounds` so both see the
same machine noise; the clients (one sample per request, real MNIST test digits, every answer
checked) run in this process. Prints throughput, p50/p99 latency, the mean batch size the
server formed, the ratio, and a per-request cost breakdown that explains it.
Target: batching at least 3x the unbatched throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlnb import deploy, vision  # noqa: E402
from dlnb.models import LeNet5  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(model: Path, threads: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """Start `python -m dlnb serve` and wait until it answers /healthz."""
    import httpx

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlnb",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--threads",
            str(threads),
            *extra,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{url}/healthz")
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("The service did not start.") from None
            time.sleep(0.2)


def _mean_batch(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics").text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("dlnb_batch_size_")
    }
    return values["dlnb_batch_size_sum"] / values["dlnb_batch_size_count"]


def _breakdown(path: Path, x: np.ndarray, threads: int) -> dict:
    """Per-request costs measured in this process: JSON decoding, validation, the model at batch 1 and 32."""
    body = json.dumps({"inputs": x[:1].tolist()}).encode()
    fn = deploy.as_numpy_fn(deploy.ort_session(path, threads, spin=False))
    xs = np.ascontiguousarray(x[:32])
    cost = {}
    for name, call in {
        "json_decode": lambda: json.loads(body),
        "validate": lambda: deploy.parse_inputs(json.loads(body), x.shape[1:]),
        "model_batch1": lambda: fn(xs[:1]),
        "model_batch32": lambda: fn(xs),
    }.items():
        times = deploy.time_calls(lambda _, call=call: call(), None, 300)
        cost[name] = 1e6 * float(np.median(times[50:]))
    cost["validate"] -= cost["json_decode"]
    return cost


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime intra-op threads in the server"
    )
    a = p.parse_args()
    torch.manual_seed(0)
    model = LeNet5().eval()
    x, _ = vision.mnist_tensors("test", subset=512, seed=0)
    modes = {
        "no batching": ["--no-batching"],
        "batching (max 32, 2 ms)": ["--max-batch-size", "32", "--max-wait-ms", "2"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = deploy.export_onnx(model, x[:2], Path(tmp) / "lenet5.onnx")
        expected = deploy.as_numpy_fn(deploy.ort_session(path))(x.numpy()).argmax(1)
        for r in range(a.rounds):
            for mode, extra in modes.items():
                proc, url = _server(path, a.threads, extra)
                try:
                    deploy.load_test(
                        url, x.numpy(), expected=expected, clients=a.clients, requests=200
                    )  # warm-up
                    res = deploy.load_test(
                        url, x.numpy(), expected=expected, clients=a.clients, requests=a.requests
                    )
                    rows.append(
                        {
                            "mode": mode,
                            "round": r,
                            **{
                                k: res[k]
                                for k in ("throughput_rps", "p50_ms", "p99_ms", "errors", "wrong")
                            },
                            "mean_batch": _mean_batch(url),
                        }
                    )
                finally:
                    proc.terminate()
                    proc.wait(30)
        cost = _breakdown(path, x.numpy(), a.threads)
    df = pd.DataFrame(rows)
    summary = df.groupby("mode", sort=False).agg(
        throughput_rps=("throughput_rps", "median"),
        p50_ms=("p50_ms", "median"),
        p99_ms=("p99_ms", "median"),
        mean_batch=("mean_batch", "median"),
        errors=("errors", "sum"),
        wrong=("wrong", "sum"),
    )
    print(
        f"{a.clients} clients, {a.requests} requests per round, {a.rounds} rounds (medians), "
        f"{os.cpu_count()} logical cores, server ONNX Runtime threads={a.threads}"
    )
    print(df.round(2).to_string(index=False))
    print(summary.round(2).to_string())
    ratio = summary.throughput_rps.iloc[1] / summary.throughput_rps.iloc[0]
    print(
        f"throughput with batching / without: {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'MISSED'}); "
        f"p99 {summary.p99_ms.iloc[1]:.1f} ms with batching, {summary.p99_ms.iloc[0]:.1f} ms without"
    )
    print(
        "per-request costs (us, median, this process): "
        + ", ".join(f"{k} {v:.0f}" for k, v in cost.items())
    )
    saved = cost["model_batch1"] - cost["model_batch32"] / 32
    print(
        f"batching saves about {saved:.0f} us of model time per request; the rest of each request "
        f"(HTTP parsing, JSON decoding and validation, asyncio, the response) is paid either way."
    )


if __name__ == "__main__":
    main()
