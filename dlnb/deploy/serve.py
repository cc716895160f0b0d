"""An HTTP inference service with dynamic batching for an exported model (FastAPI + uvicorn).

    python -m dlnb serve --model runs/lenet5.onnx --port 8000      (or python -m dlnb.deploy.serve)

POST /predict {"inputs": [sample, ...]} -> {"outputs": [...], "predictions": [...]}; GET /healthz;
GET /metrics (Prometheus text). Requests are queued and grouped into batches of at most
`max_batch_size` samples, waiting at most `max_wait_ms` for a batch to fill; the model runs on
one worker thread so the event loop keeps accepting requests.
"""

import argparse
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dlnb.deploy.batching import Batcher
from dlnb.deploy.export import NumpyFn, as_numpy_fn, ort_session, sample_shape
from dlnb.deploy.middleware import Guard, make_metrics

if TYPE_CHECKING:
    import uvicorn


@dataclass(frozen=True)
class ServeConfig:
    """Service settings. `max_batch_size=1` turns batching off."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int = 2 * 1024 * 1024
    graceful_timeout_s: int = 15


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


def create_app(
    fn: NumpyFn, shape: tuple[int, ...], config: ServeConfig = ServeConfig(), name: str = "model"
):
    """A FastAPI app serving `fn` (numpy batch in, numpy batch out) for samples of `shape`."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    metrics = make_metrics()
    state: dict = {}

    def on_batch(rows: int, seconds: float) -> None:
        metrics["batch"].observe(rows)
        metrics["inference"].observe(seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["batcher"] = Batcher(fn, config.max_batch_size, config.max_wait_ms / 1e3, on_batch)
        state["batcher"].start()
        yield
        await state["batcher"].stop()

    app = FastAPI(title=f"dlnb: {name}", lifespan=lifespan)

    @app.post("/predict")
    async def predict(request: Request):
        """Outputs and top-1 predictions for `{"inputs": [sample, ...]}`."""
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HTTPException(
                400, f'The body is not valid JSON ({e}); send {{"inputs": [...]}}.'
            ) from None
        try:
            x = parse_inputs(payload, shape)
        except (ValueError, TypeError) as e:
            raise HTTPException(422, str(e)) from None
        try:
            out = await state["batcher"].submit(x)
        except Exception as e:  # the model failed on this batch; the service keeps serving
            logging.getLogger(__name__).exception("Inference failed")
            raise HTTPException(
                500, f"The model failed on this batch ({type(e).__name__}: {e})."
            ) from None
        return JSONResponse({"outputs": out.tolist(), "predictions": out.argmax(-1).tolist()})

    @app.get("/healthz")
    async def healthz():
        """Liveness, and what the service expects."""
        return {
            "status": "ok",
            "model": name,
            "sample_shape": list(shape),
            "max_batch_size": config.max_batch_size,
            "max_wait_ms": config.max_wait_ms,
        }

    @app.get("/metrics")
    async def prometheus():
        """Request counts, latency and batch-size histograms in Prometheus text format."""
        return Response(generate_latest(metrics["registry"]), media_type=CONTENT_TYPE_LATEST)

    return Guard(app, config.max_body_bytes, metrics)


def load_model(
    model, shape: tuple[int, ...] | None = None, threads: int | None = None
) -> tuple[NumpyFn, tuple, str]:
    """Resolve a `.onnx` path (run with ONNX Runtime) or any runnable model into (fn, sample shape, name)."""
    if isinstance(model, (str, Path)):
        session = ort_session(model, threads, spin=False)
        return as_numpy_fn(session), tuple(shape or sample_shape(session)), Path(model).stem
    if shape is None:
        raise ValueError(
            "Pass sample_shape=(...) (one sample's shape, without the batch axis) when serving an in-memory model."
        )
    return as_numpy_fn(model), tuple(shape), type(model).__name__


@dataclass
class ServerHandle:
    """A service running in a background thread: `.url`, `.stop()`; also a context manager."""

    server: "uvicorn.Server"
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting connections, answer the requests in flight, then shut down."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"The service at {self.url} did not stop within {timeout} s.")

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _uvicorn_server(app, config: ServeConfig, log_level: str = "warning") -> "uvicorn.Server":
    """A uvicorn server for `app` without access logs, with graceful shutdown."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=config.graceful_timeout_s,
        )
    )


def start(
    model,
    sample_shape: tuple[int, ...] | None = None,
    config: ServeConfig | None = None,
    threads: int | None = None,
    **overrides,
) -> ServerHandle:
    """Serve a model from a background thread (e.g. a notebook cell) and return once it accepts requests.

    `model` is a `.onnx` path or an in-memory model with `sample_shape`. Keyword overrides
    go to ServeConfig; `port=0` picks a free port. uvicorn installs signal handlers only in
    the main thread, so the notebook's Ctrl-C/interrupt stays with the kernel.
    """
    config = replace(config or ServeConfig(port=0), **overrides)
    fn, shape, name = load_model(model, sample_shape, threads)
    server = _uvicorn_server(create_app(fn, shape, config, name), config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as e:  # uvicorn exits with SystemExit when it cannot bind
            failure.append(e)

    thread = threading.Thread(target=run, name="dlnb-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(
                f"The service did not start on {config.host}:{config.port} "
                f"({failure[0] if failure else 'timed out'}); is the port already in use?"
            )
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return ServerHandle(server, thread, f"http://{config.host}:{port}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The service's command-line options (shared by `python -m dlnb serve` and this module)."""
    p.add_argument(
        "--model",
        required=True,
        help="path to an .onnx file (export with dlnb.deploy.export.export_onnx)",
    )
    p.add_argument(
        "--host", default=ServeConfig.host, help="interface to bind (default: loopback only)"
    )
    p.add_argument("--port", type=int, default=ServeConfig.port)
    p.add_argument("--max-batch-size", type=int, default=ServeConfig.max_batch_size)
    p.add_argument("--max-wait-ms", type=float, default=ServeConfig.max_wait_ms)
    p.add_argument("--max-body-bytes", type=int, default=ServeConfig.max_body_bytes)
    p.add_argument(
        "--no-batching", action="store_true", help="run every request on its own (max batch size 1)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="ONNX Runtime intra-op threads (default: torch's count)",
    )


def run(a: argparse.Namespace) -> None:
    """Serve the ONNX model named by parsed options until Ctrl-C (or SIGTERM)."""
    config = ServeConfig(
        host=a.host,
        port=a.port,
        max_batch_size=1 if a.no_batching else a.max_batch_size,
        max_wait_ms=a.max_wait_ms,
        max_body_bytes=a.max_body_bytes,
    )
    fn, shape, name = load_model(a.model, threads=a.threads)
    print(
        f"dlnb serve: {name} {list(shape)} on http://{a.host}:{a.port} "
        f"(max batch {config.max_batch_size}, max wait {config.max_wait_ms} ms)",
        flush=True,
    )
    _uvicorn_server(create_app(fn, shape, config, name), config, log_level="info").run()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve an ONNX model until Ctrl-C (or SIGTERM), then shut down cleanly."""
    p = argparse.ArgumentParser(prog="python -m dlnb serve", description=__doc__.split("\n")[0])
    add_arguments(p)
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
