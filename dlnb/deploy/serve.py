"""An HTTP inference service with dynamic batching for an exported model (FastAPI + uvicorn).

    python -m dlnb serve --model runs/lenet5.onnx --port 8000      (or python -m dlnb.deploy.serve)

POST /predict {"inputs": [sample, ...]} -> {"outputs": [...], "predictions": [...]}, or the same
samples as an npy body (Content-Type: application/x-npy, float32 (n, *shape)), or one PNG/JPEG
image (preprocessed like the training data, when the service was given that preprocessing);
`Accept: application/x-npy` answers the outputs as npy. GET /healthz; GET /metrics (Prometheus). Requests are queued and grouped into batches of at most
`max_batch_size` samples, waiting at most `max_wait_ms` for a batch to fill; the model runs on
one worker thread so the event loop keeps accepting requests.

Hardened against bad or hostile clients: bodies must be of those types (415 otherwise) of at most
`max_body_bytes` (413, after draining the rest so the answer arrives), arrive within
`body_timeout_s` (408) after headers that arrive within `header_timeout_s` (else the connection
is closed); at most `max_pending` requests wait for the model (503 + Retry-After beyond). On
SIGTERM or `stop()` the requests already sent, or waiting in the listen backlog, are answered.
"""

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dlnb.deploy import codecs
from dlnb.deploy.batching import Batcher
from dlnb.deploy.codecs import Preprocess
from dlnb.deploy.export import NumpyFn, as_numpy_fn, ort_session, sample_shape
from dlnb.deploy.middleware import Guard, make_metrics

if TYPE_CHECKING:
    import uvicorn


@dataclass(frozen=True)
class ServeConfig:
    """Service settings. `max_batch_size=1` turns batching off; `max_pending` bounds the /predict
    queue (503 beyond); the timeouts cut off clients slow to send headers or body."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int = 2 * 1024 * 1024
    graceful_timeout_s: int = 15
    max_pending: int = 256
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_image_pixels: int = codecs.MAX_IMAGE_PIXELS


def create_app(
    fn: NumpyFn,
    shape: tuple[int, ...],
    config: ServeConfig = ServeConfig(),
    name: str = "model",
    preprocess: Preprocess | None = None,
):
    """A FastAPI app serving `fn` (numpy batch in, numpy batch out) for samples of `shape`;
    `preprocess` turns a decoded image into one sample (image bodies are refused without it)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import Response
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
        """Outputs (and top-1 predictions) for a JSON, npy or image body; JSON or npy by Accept."""
        media = codecs.media_type(request.headers.get("content-type"))
        if media not in codecs.MEDIA_TYPES and not media.endswith("+json"):
            raise HTTPException(
                415,
                f"Content-Type is {media or 'missing'!r}; send one of {', '.join(codecs.MEDIA_TYPES)}.",
            )
        try:
            x = codecs.decode_request(
                media, await request.body(), shape, preprocess, config.max_image_pixels
            )
        except codecs.Undecodable as e:
            raise HTTPException(400, str(e)) from None
        except codecs.TooLarge as e:
            raise HTTPException(413, str(e)) from None
        except (ValueError, TypeError) as e:
            raise HTTPException(422, str(e)) from None
        try:
            out = await state["batcher"].submit(x)
        except Exception as e:  # the model failed on this batch; the service keeps serving
            logging.getLogger(__name__).exception("Inference failed")
            raise HTTPException(
                500, f"The model failed on this batch ({type(e).__name__}: {e})."
            ) from None
        body, media = codecs.encode_response(out, request.headers.get("accept"))
        return Response(body, media_type=media)

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

    return Guard(
        app,
        config.max_body_bytes,
        metrics,
        max_pending=config.max_pending,
        body_timeout_s=config.body_timeout_s,
    )


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


# On shutdown, idle keep-alive connections stay open this long for a request already on its way.
SHUTDOWN_LINGER_S = 0.25


def _uvicorn_server(app, config: ServeConfig, log_level: str = "warning") -> "uvicorn.Server":
    """A uvicorn server for `app` without access logs, with a header deadline and graceful shutdown."""
    import uvicorn
    from uvicorn.protocols.http.flow_control import CLOSE_HEADER
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        """h11 that closes connections whose request headers take over `header_timeout_s`, and on
        shutdown answers (with `Connection: close`) a request arriving within SHUTDOWN_LINGER_S."""

        deadline: asyncio.TimerHandle | None = None
        draining = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.draining and not self._idle():
                self._last_request()  # one that arrived during shutdown

        def shutdown(self) -> None:
            self.draining = True
            if self._idle():
                self.loop.call_later(SHUTDOWN_LINGER_S, self._close_if_idle)
            else:
                self._last_request()

        def _last_request(self) -> None:
            # The answer says `Connection: close`, so the client sends nothing more on this connection.
            self.cycle.keep_alive = False
            headers = self.cycle.scope["headers"]
            if isinstance(headers, list) and CLOSE_HEADER not in headers:
                headers.append(CLOSE_HEADER)

        def _idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            self.deadline = self.loop.call_later(config.header_timeout_s, self._close_if_idle)

        def _close_if_idle(self) -> None:
            if self._idle():
                self.timeout_keep_alive_handler()  # closes the connection

    class Server(uvicorn.Server):
        """uvicorn, answering on shutdown the connections the kernel accepted but uvicorn had not."""

        async def shutdown(self, sockets=None) -> None:
            protocol = functools.partial(
                Protocol,
                config=self.config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
            )
            loop = asyncio.get_running_loop()
            for listener in [s for server in self.servers for s in server.sockets]:
                with socket.socket(fileno=os.dup(listener.fileno())) as sock:
                    sock.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            conn, _ = sock.accept()
                            await loop.connect_accepted_socket(protocol, conn)
            await super().shutdown(sockets)

    return Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            http=Protocol,
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
    preprocess: Preprocess | None = None,
    **overrides,
) -> ServerHandle:
    """Serve a model from a background thread (e.g. a notebook cell) and return once it accepts requests.

    `model` is a `.onnx` path or an in-memory model with `sample_shape`. Keyword overrides
    go to ServeConfig; `port=0` picks a free port; `preprocess` (e.g. `codecs.image_preprocessor`)
    makes it accept PNG/JPEG bodies. uvicorn installs signal handlers only in
    the main thread, so the notebook's Ctrl-C/interrupt stays with the kernel.
    """
    config = replace(config or ServeConfig(port=0), **overrides)
    fn, shape, name = load_model(model, sample_shape, threads)
    server = _uvicorn_server(create_app(fn, shape, config, name, preprocess), config)
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
    p.add_argument("--max-pending", type=int, default=ServeConfig.max_pending)
    p.add_argument("--header-timeout-s", type=float, default=ServeConfig.header_timeout_s)
    p.add_argument("--body-timeout-s", type=float, default=ServeConfig.body_timeout_s)
    p.add_argument(
        "--no-batching", action="store_true", help="run every request on its own (max batch size 1)"
    )
    p.add_argument(
        "--image-mean", type=float, nargs="+", help="accept PNG/JPEG bodies, normalised so"
    )
    p.add_argument("--image-std", type=float, nargs="+", help="(x - mean) / std, x in [0, 1]")
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
        max_pending=a.max_pending,
        header_timeout_s=a.header_timeout_s,
        body_timeout_s=a.body_timeout_s,
    )
    fn, shape, name = load_model(a.model, threads=a.threads)
    images = a.image_mean is not None and a.image_std is not None
    preprocess = codecs.image_preprocessor(shape, a.image_mean, a.image_std) if images else None
    print(
        f"dlnb serve: {name} {list(shape)} on http://{a.host}:{a.port} "
        f"(max batch {config.max_batch_size}, max wait {config.max_wait_ms} ms, "
        f"images {'accepted' if images else 'refused'})",
        flush=True,
    )
    app = create_app(fn, shape, config, name, preprocess)
    _uvicorn_server(app, config, log_level="info").run()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve an ONNX model until Ctrl-C (or SIGTERM), then shut down cleanly."""
    p = argparse.ArgumentParser(prog="python -m dlnb serve", description=__doc__.split("\n")[0])
    add_arguments(p)
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
