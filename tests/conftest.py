"""Shared fixtures: an offline, headless environment, a private data dir and a loopback HTTP server."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

# Set before anything imports matplotlib or huggingface_hub (a fixture would be too late for them).
os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def offline_and_headless(monkeypatch):
    """Every test runs offline (hub calls fail fast), headless, with a non-interactive backend."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("DLNB_HEADLESS", "1")
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def pytest_runtest_setup(item):
    """Skip tests marked `gpu` when there is no CUDA device."""
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")


@pytest.fixture
def single_thread():
    """Run torch on one CPU thread: tiny tensors train many times faster than with a thread pool
    fighting for a shared CPU. Use with `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch) -> Path:
    """An empty `$DLNB_DATA` for this test: downloads and caches go there, not to data/cache."""
    path = tmp_path / "dlnb-data"
    path.mkdir()
    monkeypatch.setenv("DLNB_DATA", str(path))
    return path


class LocalHTTPServer:
    """A static file server on 127.0.0.1 for a folder, in a daemon thread.

    `root` is the folder served; `url(name)` is the address of a file in it; `requests` lists the
    paths asked for (to check what was or was not downloaded). `truncate[name] = n` makes the
    server announce the full Content-Length of `name` but send only its first n bytes and close
    the connection, like a dropped download.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []
        self.truncate: dict[str, int] = {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self):
                name = self.path.lstrip("/").split("?")[0]
                server.requests.append(self.path)
                if name not in server.truncate:
                    return super().do_GET()
                data = (server.root / name).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: server.truncate[name]])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, name: str = "") -> str:
        """The URL of `name` (a path relative to `root`)."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> LocalHTTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def local_http_server(tmp_path) -> LocalHTTPServer:
    """Serve a fresh tmp folder (`server.root`) on 127.0.0.1 on a free port for this test."""
    root = tmp_path / "served"
    root.mkdir()
    with LocalHTTPServer(root) as server:
        yield server
