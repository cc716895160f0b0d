"""Devices, seeding, thread caps, atomic writes, an environment report, memory and honest timing."""

from __future__ import annotations

import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from torch import nn

T = TypeVar("T")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Return `device`, or with "auto" the best available: cuda, then mps, then cpu."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {device!r} was asked for but CUDA is not available here. "
                "Use DEVICE='auto' or 'cpu', or install a CUDA build of torch on a machine with a GPU."
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def sync(device: str | torch.device | None = None) -> None:
    """Wait for queued work on `device` to finish (a no-op on the CPU)."""
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


class Timer:
    """Wall-clock timer that synchronises the device on entry and exit.

    `sync=False` shows the trap it avoids: on a GPU, work is queued and the calls return at once,
    so an unsynchronised timer measures the launch, not the work.

    >>> with Timer("cpu") as t:
    ...     _ = torch.ones(10).sum()
    >>> t.seconds >= 0
    True
    """

    def __init__(self, device: str | torch.device | None = "cpu", sync: bool = True):
        self.device = device
        self.sync = sync
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        if self.sync:
            sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.sync:
            sync(self.device)
        self.seconds = time.perf_counter() - self._start


def matmul_gflops(n: int, device: str | torch.device = "cpu", repeats: int = 3) -> float:
    """Float32 throughput of `repeats` products of two random `n x n` matrices on `device`, in
    GFLOP/s (2 n^3 each), after one untimed warm-up product, timed with a synchronising `Timer`."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    a @ b  # the first call pays for kernel selection and memory allocation
    with Timer(dev) as timer:
        for _ in range(repeats):
            a @ b
    return 2 * n**3 * repeats / timer.seconds / 1e9


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Cap torch's intra-op CPU threads inside the block (no change when `threads` is None)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Write `path` through a binary temporary file beside it, fsynced and renamed into place.

    An error inside the block removes the temporary file and leaves `path` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def memory_stats(device: str | torch.device | None = None) -> dict[str, float]:
    """Process RSS in MiB and, on CUDA, allocated / peak allocated / reserved MiB."""
    import psutil

    stats = {"rss_mib": psutil.Process().memory_info().rss / 2**20}
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type == "cuda":
        stats["cuda_allocated_mib"] = torch.cuda.memory_allocated(dev) / 2**20
        stats["cuda_peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        stats["cuda_reserved_mib"] = torch.cuda.memory_reserved(dev) / 2**20
    return stats


def _driver_cuda_version() -> str | None:
    """The highest CUDA version the installed NVIDIA driver supports, from nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CUDA Version:\s*([\d.]+)", out)
    return match.group(1) if match else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def doctor(display: bool = True) -> dict:
    """Report versions, devices, memory and precision support; warn about CUDA/driver mismatch."""
    import importlib.metadata as md

    report: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(pick_device()),
        "devices": [],
        "warnings": [],
    }
    for pkg in ("torchvision", "transformers", "captum", "xgboost", "onnxruntime", "papermill"):
        try:
            report[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            report[pkg] = None
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            report["devices"].append(
                {
                    "index": i,
                    "name": props.name,
                    "capability": f"{props.major}.{props.minor}",
                    "total_gib": round(total / 2**30, 2),
                    "free_gib": round(free / 2**30, 2),
                    "bf16": torch.cuda.is_bf16_supported(),
                    "fp16": props.major >= 6,
                }
            )
    driver = _driver_cuda_version()
    report["driver_cuda"] = driver
    if (
        driver
        and torch.version.cuda
        and _version_tuple(torch.version.cuda) > _version_tuple(driver)
    ):
        msg = (
            f"torch was built for CUDA {torch.version.cuda} but the driver supports only CUDA "
            f"{driver}: update the NVIDIA driver or install a torch wheel built for CUDA <= {driver}."
        )
        report["warnings"].append(msg)
        warnings.warn(msg, stacklevel=2)
    if torch.version.cuda and not torch.cuda.is_available() and driver is None:
        report["warnings"].append(
            "CUDA build of torch, but no NVIDIA driver/GPU found: running on CPU."
        )
    if display:
        _print_report(report)
    return report


def _print_report(report: dict) -> None:
    width = max(len(k) for k in report)
    for key, value in report.items():
        if key in ("devices", "warnings"):
            continue
        print(f"{key:<{width}}  {value}")
    for dev in report["devices"]:
        print(
            f"gpu {dev['index']}: {dev['name']} (sm {dev['capability']}), "
            f"{dev['free_gib']}/{dev['total_gib']} GiB free, bf16={dev['bf16']} fp16={dev['fp16']}"
        )
    for msg in report["warnings"]:
        print(f"WARNING: {msg}")


# --- display -----------------------------------------------------------------------------------


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ZMQ-based IPython shell)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def is_headless() -> bool:
    """True when no front end can show live output: not in a notebook, or `DLNB_HEADLESS=1`.

    The notebook runner (papermill) sets `DLNB_HEADLESS=1`, so widgets and live plots render a
    single static figure instead of updating.
    """
    return os.environ.get("DLNB_HEADLESS", "0") == "1" or not in_notebook()


def show(obj) -> None:
    """Display `obj` in a notebook, or print it elsewhere."""
    if in_notebook():
        from IPython.display import display

        display(obj)
    else:
        print(obj)


def progress(
    items: Iterable[T], desc: str, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Iterate `items` showing progress: a tqdm bar live, a status line per item when headless.

    For the loops of a notebook cell that runs for more than a few seconds. The bar is kept when
    done (`leave=True`), so a reloaded page finds its widget; `enabled=False` shows nothing.
    """
    seq = list(items)
    n = total if total is not None else len(seq)
    if not enabled:
        yield from seq
        return
    if not is_headless() or sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(seq, desc=desc, total=n, leave=True)
        return
    start = time.perf_counter()
    for i, item in enumerate(seq, 1):
        yield item
        print(f"{desc}: {i}/{n} done ({time.perf_counter() - start:.0f} s)", flush=True)
