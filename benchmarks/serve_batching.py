"""Throughput of the inference service with dynamic batching against without, at 32 concurrent clients,
with JSON and npy bodies, and against LitServe serving the same model to the same clients.

    python benchmarks/serve_batching.py [--clients 32] [--requests 2000] [--rounds 3]
    python benchmarks/serve_batching.py --model lite0 --requests 200 --rounds 1

Serves LeNet-5 (ONNX Runtime) with `python -m dlnb serve` in a separate process, with
`--no-batching` and with `--max-batch-size 32 --max-wait-ms 2`, for JSON and for npy bodies;
and, when `litserve` is installed (`pip install -e .[bench]`), with LitServe (same ONNX session,
JSON bodies, batching off and on). All modes alternate over `rounds` so they see the same machine
noise; the clients (one sample per request, real MNIST test digits, every answer checked) run in
this process. Prints throughput, p50/p99 latency, the mean batch size dlnb's server formed, the
ratios, and a per-request cost breakdown that explains them.
Target: batching at least 3x the unbatched throughput with binary (npy) bodies.

`--model lite0` serves EfficientNet-Lite0 at 224 px instead (JSON, npy and PNG bodies) and prints
the model's own throughput at batch 1 and 32 as the ceiling. Targets: npy/PNG >= 2x JSON,
within 15 % of the ceiling.
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

try:
    import litserve as ls
except ImportError:  # an optional peer: pip install -e .[bench]
    ls = None

if ls is not None:

    class OnnxAPI(ls.LitAPI):
        """The same ONNX Runtime session as dlnb's service, behind LitServe (JSON in and out)."""

        def __init__(self, model: str, threads: int, **kwargs):
            super().__init__(**kwargs)
            self.model, self.threads = model, threads

        def setup(self, device):
            self.fn = deploy.as_numpy_fn(deploy.ort_session(self.model, self.threads, spin=False))

        def decode_request(self, request):
            return np.asarray(request["inputs"], np.float32)

        def batch(self, inputs):
            return np.concatenate(inputs)

        def predict(self, x):
            return self.fn(x)

        def unbatch(self, output):
            return [row[None] for row in output]

        def encode_response(self, output):
            return {"outputs": output.tolist(), "predictions": output.argmax(-1).tolist()}


def litserve_worker(model: str, port: int, max_batch_size: int, threads: int) -> None:
    """Serve the ONNX model with LitServe (run in its own process by `_server`)."""
    timeout = 0.002 if max_batch_size > 1 else 0.0
    api = OnnxAPI(model, threads, max_batch_size=max_batch_size, batch_timeout=timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(model: Path, threads: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """Start `python -m dlnb serve` (or LitServe, when `extra` starts with "litserve") and wait
    until it answers its health check."""
    import httpx

    port = _free_port()
    if extra[:1] == ["litserve"]:
        command = [__file__, "--litserve-worker", str(model), str(port), extra[1], str(threads)]
        health = "/health"
    else:
        command = ["-m", "dlnb", "serve", "--model", str(model), "--port", str(port)]
        command += ["--threads", str(threads), *extra]
        health = "/healthz"
    proc = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}{health}").status_code == 200:
                return proc, url
            time.sleep(0.2)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("The service did not start.") from None
            time.sleep(0.2)


def _mean_batch(url: str) -> float:
    """Mean samples per model call of a dlnb service (NaN for a peer without that metric)."""
    import httpx

    text = httpx.get(f"{url}/metrics").text
    if "dlnb_batch_size_sum" not in text:
        return float("nan")
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("dlnb_batch_size_")
    }
    return values["dlnb_batch_size_sum"] / values["dlnb_batch_size_count"]


def _breakdown(path: Path, x: np.ndarray, threads: int) -> dict:
    """Per-request costs measured in this process: JSON decoding and validation, npy decoding (with
    its checks), the model at batch 1 and 32."""
    body = json.dumps({"inputs": x[:1].tolist()}).encode()
    npy = deploy.encode_npy(x[:1])
    fn = deploy.as_numpy_fn(deploy.ort_session(path, threads, spin=False))
    xs = np.ascontiguousarray(x[:32])
    cost = {}
    for name, call in {
        "json_decode": lambda: json.loads(body),
        "validate": lambda: deploy.parse_inputs(json.loads(body), x.shape[1:]),
        "npy_decode": lambda: deploy.decode_npy(npy, x.shape[1:]),
        "model_batch1": lambda: fn(xs[:1]),
        "model_batch32": lambda: fn(xs),
    }.items():
        times = deploy.time_calls(lambda _, call=call: call(), None, 300)
        cost[name] = 1e6 * float(np.median(times[50:]))
    cost["validate"] -= cost["json_decode"]
    return cost


def _app_cost(path: Path, x: np.ndarray, threads: int, batch: int, n: int = 640) -> float:
    """Microseconds of the service's own work per npy request, without HTTP: the ASGI app (limits,
    FastAPI, decoding, the batcher and its worker thread, the answer) called in this process by
    `batch` concurrent callers (1: one request at a time, batching off)."""
    import asyncio

    fn = deploy.as_numpy_fn(deploy.ort_session(path, threads, spin=False))
    config = deploy.ServeConfig(max_batch_size=batch, max_wait_ms=2)
    guard = deploy.create_app(fn, x.shape[1:], config)
    body = deploy.encode_npy(x[:1])
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", b"application/x-npy")],
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
    }

    async def one() -> None:
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"status {message['status']}")

        await guard(dict(scope), receive, send)

    async def drive() -> float:
        async with guard.app.router.lifespan_context(guard.app):
            for _ in range(2):  # the first pass warms up
                t0 = time.perf_counter()
                for _ in range(n // batch):
                    await asyncio.gather(*(one() for _ in range(batch)))
                seconds = time.perf_counter() - t0
        return 1e6 * seconds / (n // batch * batch)

    return asyncio.run(drive())


def lite0(a: argparse.Namespace) -> None:
    """EfficientNet-Lite0 at 224 px: JSON against npy and PNG bodies, batching off and on, and the
    model's own best throughput (batch 1 or 32, this process, same threads) as the ceiling."""
    from PIL import Image

    from dlnb.vision.backbones import LITE_MEAN, LITE_STD

    model, _ = vision.load_backbone("efficientnet_lite0")
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (32, 28, 28, 3), dtype=np.uint8)  # smooth images: PNG compresses
    pixels = np.stack([np.asarray(Image.fromarray(im).resize((224, 224))) for im in small])
    prep = deploy.image_preprocessor((3, 224, 224), LITE_MEAN, LITE_STD)
    x = np.stack([prep(Image.fromarray(im)) for im in pixels])  # what the service computes
    common = ["--max-body-bytes", str(8 * 2**20), "--image-mean", *map(str, LITE_MEAN)]
    common += ["--image-std", *map(str, LITE_STD)]
    batching = ["--max-batch-size", "32", "--max-wait-ms", "2"]
    modes = {
        "dlnb json, no batching": (["--no-batching"], "json"),
        "dlnb json, batching": (batching, "json"),
        "dlnb npy, batching": (batching, "npy"),
        "dlnb png, batching": (batching, "png"),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = deploy.export_onnx(model.eval(), torch.from_numpy(x[:2]), Path(tmp) / "lite0.onnx")
        fn = deploy.as_numpy_fn(deploy.ort_session(path, a.threads, spin=False))
        expected = deploy.batched(fn, x, 8).argmax(1)
        ceiling = {}
        for r in range(a.rounds):
            for b in (1, 32):
                times = deploy.time_calls(fn, np.ascontiguousarray(x[:b]), 4 if b > 1 else 40)
                ceiling.setdefault(b, []).append(b / float(np.median(times[1:])))
            for mode, (extra, send) in modes.items():
                proc, url = _server(path, a.threads, [*common, *extra])
                inputs = pixels if send == "png" else x
                try:
                    kw = dict(expected=expected, clients=a.clients, send=send)
                    deploy.load_test(url, inputs, requests=a.clients, **kw)  # warm-up
                    res = deploy.load_test(url, inputs, requests=a.requests, **kw)
                    rows.append({"mode": mode, "round": r, **{k: res[k] for k in RESULT_KEYS}})
                finally:
                    proc.terminate()
                    proc.wait(30)
    df = pd.DataFrame(rows)
    rps = df.groupby("mode", sort=False).throughput_rps.median()
    best = {b: float(np.median(v)) for b, v in ceiling.items()}
    top = max(best.values())
    print(
        f"EfficientNet-Lite0, 224 px, {a.clients} clients, {a.requests} requests per mode and "
        f"round, {a.rounds} rounds, ORT threads {a.threads}, load average {os.getloadavg()}"
    )
    print(df.round(2).to_string(index=False))
    print(f"ceiling: the model alone {best[1]:.1f} images/s at batch 1, {best[32]:.1f} at batch 32")
    for mode in ("dlnb npy, batching", "dlnb png, batching"):
        print(
            f"{mode}: {rps[mode] / rps['dlnb json, batching']:.2f}x the JSON path (target >= 2x), "
            f"{rps[mode] / top:.0%} of the ceiling (target >= 85%)"
        )
    print(
        f"JSON: batching / without {rps['dlnb json, batching'] / rps['dlnb json, no batching']:.2f}x"
    )


RESULT_KEYS = ("throughput_rps", "p50_ms", "p99_ms", "errors", "wrong")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime intra-op threads in the server"
    )
    p.add_argument("--model", choices=("lenet5", "lite0"), default="lenet5")
    p.add_argument("--litserve-worker", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.litserve_worker:
        model, port, batch, threads = a.litserve_worker
        return litserve_worker(model, int(port), int(batch), int(threads))
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}")
    if a.model == "lite0":
        if torch.cuda.is_available():
            print("CUDA is present, but this script serves on the CPU only: no GPU ratio measured.")
        else:
            print("No CUDA device: the GPU batching ratio (CUDA execution provider) is skipped.")
        return lite0(a)
    torch.manual_seed(0)
    model = LeNet5().eval()
    x, _ = vision.mnist_tensors("test", subset=512, seed=0)
    batching = ["--max-batch-size", "32", "--max-wait-ms", "2"]
    modes = {  # name: (server arguments, body)
        "dlnb json, no batching": (["--no-batching"], "json"),
        "dlnb json, batching": (batching, "json"),
        "dlnb npy, no batching": (["--no-batching"], "npy"),
        "dlnb npy, batching": (batching, "npy"),
    }
    if ls is not None:
        modes["LitServe json, no batching"] = (["litserve", "1"], "json")
        modes["LitServe json, batching"] = (["litserve", "32"], "json")
    else:
        print("litserve is not installed (pip install -e .[bench]): skipping the LitServe peer.")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = deploy.export_onnx(model, x[:2], Path(tmp) / "lenet5.onnx")
        expected = deploy.as_numpy_fn(deploy.ort_session(path))(x.numpy()).argmax(1)
        for r in range(a.rounds):
            for mode, (extra, send) in modes.items():
                proc, url = _server(path, a.threads, extra)
                try:
                    common = dict(expected=expected, clients=a.clients, send=send)
                    deploy.load_test(url, x.numpy(), requests=200, **common)  # warm-up
                    res = deploy.load_test(url, x.numpy(), requests=a.requests, **common)
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
        app = {b: _app_cost(path, x.numpy(), a.threads, b) for b in (1, 32)}
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
        f"{os.cpu_count()} logical cores, server ONNX Runtime threads={a.threads}, "
        f"load average at end {os.getloadavg()}"
    )
    print(df.round(2).to_string(index=False))
    print(summary.round(2).to_string())
    rps = summary.throughput_rps
    for body in ("json", "npy"):
        ratio = rps[f"dlnb {body}, batching"] / rps[f"dlnb {body}, no batching"]
        target = f" (target >= 3x: {'met' if ratio >= 3 else 'MISSED'})" if body == "npy" else ""
        print(
            f"dlnb {body}: throughput with batching / without: {ratio:.2f}x{target}; p99 "
            f"{summary.p99_ms[f'dlnb {body}, batching']:.1f} ms with batching, "
            f"{summary.p99_ms[f'dlnb {body}, no batching']:.1f} ms without"
        )
    print(
        f"dlnb npy / json, both batching: {rps['dlnb npy, batching'] / rps['dlnb json, batching']:.2f}x"
    )
    if "LitServe json, batching" in rps:
        lit_on, lit_off = rps["LitServe json, batching"], rps["LitServe json, no batching"]
        print(
            f"LitServe: batching / without {lit_on / lit_off:.2f}x; dlnb json / LitServe json: "
            f"{rps['dlnb json, no batching'] / lit_off:.2f}x without batching, "
            f"{rps['dlnb json, batching'] / lit_on:.2f}x with; dlnb npy batching / LitServe "
            f"batching {rps['dlnb npy, batching'] / lit_on:.2f}x"
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
    wall = {b: 1e6 / rps[f"dlnb npy, {m}"] for b, m in ((1, "no batching"), (32, "batching"))}
    print(
        "npy requests, us each: the service's own work without HTTP (ASGI app in this process) "
        f"{app[1]:.0f} at batch 1, {app[32]:.0f} at batch 32 (ratio {app[1] / app[32]:.2f}x); "
        f"wall time per request over HTTP {wall[1]:.0f} without batching, {wall[32]:.0f} with. "
        f"The rest ({wall[1] - app[1]:.0f} and {wall[32] - app[32]:.0f} us) is HTTP parsing "
        "(uvicorn h11), the event loop's socket work and the load generator, which shares the CPUs."
    )


if __name__ == "__main__":
    main()
