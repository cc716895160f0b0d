"""Shared fixtures: an offline, headless environment, a private data dir, one CPU thread, weight
snapshots, loopback servers (static files, or a launched server process on a free port)."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dlnb.vision.backbones import TransferNet

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
    from dlnb.runtime import cpu_threads

    with cpu_threads(1):
        yield


@pytest.fixture
def weight_snapshots():
    """A `fit` callback keeping a copy of the model's weights after each epoch in `.weights[epoch]`."""
    from dlnb.train.callbacks import Callback

    class WeightSnapshots(Callback):
        def __init__(self):
            self.weights: dict[int, dict] = {}

        def on_epoch_end(self, state):
            model = state.model
            self.weights[state.epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    return WeightSnapshots()


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


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launch_server() -> Iterator[Callable[..., subprocess.Popen]]:
    """`launch_server(args, ready_url, log, env=None)` starts a server process writing to `log` and
    returns it once `ready_url` answers (failing the test, with the log, if it never does). A
    process still running at the end of the test is terminated."""
    procs: list[subprocess.Popen] = []

    def launch(
        args: Sequence[str],
        ready_url: str,
        log: Path,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=2)
                return proc
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{list(args)[:4]} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)

    yield launch
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- models shared by the tests of one area (each test module builds its own copy) ---------------


@pytest.fixture
def one_blas_thread():
    """scikit-learn's BLAS on one thread too: a thread pool fighting over a shared CPU is slow."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def patch_model():
    """The tiny patch-finding CNN of `tests.assets.tiny_models`, trained (about a second)."""
    from tests.assets import tiny_models

    return tiny_models.train_patch_cnn()


@pytest.fixture(scope="module")
def patch_data():
    """16 patch images (class 1) and their patch masks."""
    from tests.assets import tiny_models

    x, y, mask = tiny_models.patch_images(32, seed=123)
    return x[y == 1], mask[y == 1]  # 16 images that hold a patch


@pytest.fixture(scope="module")
def lenet():
    """A randomly initialised LeNet5 and real-looking inputs (seeded)."""
    import torch

    from dlnb.models import LeNet5

    torch.manual_seed(0)
    return LeNet5().eval(), torch.randn(64, 1, 28, 28)


@pytest.fixture(scope="module")
def lenet_onnx(lenet, tmp_path_factory):
    """LeNet5 exported once to ONNX for the tests of a module."""
    from dlnb.deploy import export as deploy

    model, x = lenet
    return deploy.export_onnx(model, x[:1], tmp_path_factory.mktemp("onnx") / "lenet.onnx")


@pytest.fixture(scope="module")
def lite0():
    """The pretrained EfficientNet-Lite0 (loaded once for the module; tests must not modify it)."""
    from dlnb.vision import backbones

    return backbones.load_backbone("efficientnet_lite0")


def fresh(num_classes: int = 10) -> TransferNet:
    """An EfficientNet-Lite0 with random weights and a `num_classes`-way head."""
    from dlnb.vision import backbones

    model, _ = backbones.load_backbone(
        "efficientnet_lite0", pretrained=False, num_classes=num_classes
    )
    return model
