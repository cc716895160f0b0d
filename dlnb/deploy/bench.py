"""Latency and throughput of several runtimes of one model, measured side by side in one run."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dlnb import claims
from dlnb.deploy.client import request_body
from dlnb.deploy.export import NumpyFn, as_numpy_fn, ort_threads
from dlnb.plots import axes
from dlnb.recording import record
from dlnb.runtime import cpu_threads


def thread_settings() -> dict:
    """The CPU thread settings a measurement ran under (state them next to any timing)."""
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
    }


def _threads_of(model) -> int:
    """Intra-op threads a runtime uses: the ORT session's setting, else torch's."""
    return ort_threads(model) if hasattr(model, "get_session_options") else torch.get_num_threads()


def _tile(sample: np.ndarray, batch_size: int) -> np.ndarray:
    """The first `batch_size` rows of `sample`, repeating it when it is shorter."""
    reps = -(-batch_size // len(sample))
    return np.ascontiguousarray(np.concatenate([sample] * reps)[:batch_size], dtype=np.float32)


def time_calls(
    fn: NumpyFn, x: np.ndarray, n: int, max_seconds: float = float("inf")
) -> list[float]:
    """Wall-clock seconds of up to `n` calls `fn(x)`, stopping early after `max_seconds`."""
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
        if t0 - start > max_seconds:
            break
    return times


def benchmark(
    runtimes: dict,
    sample: np.ndarray,
    batch_sizes: tuple[int, ...] = (1, 16, 64, 256),
    *,
    warmup: int = 20,
    iters: int = 300,
    rounds: int = 5,
    max_seconds: float = 2.0,
    torch_threads: int | None = None,
) -> pd.DataFrame:
    """Latency percentiles and throughput of each runtime at each batch size, in one interleaved run.

    `runtimes` maps a name to anything `dlnb.deploy.export.as_numpy_fn` runs (nn.Module, TorchScript,
    ExportedProgram, ORT session). Warm-up calls are excluded. To share the machine's noise
    fairly, each batch size is timed in `rounds` rounds that visit every runtime in turn.
    `max_seconds` bounds the time per runtime and batch size. `torch_threads` sets torch's
    intra-op threads for the run (restored afterwards); give ORT sessions the same count
    (`ort_session(path, threads=...)`) for a like-for-like comparison. Thread settings go in
    `df.attrs` and the `threads` column.
    """
    with cpu_threads(torch_threads):
        return _measure(runtimes, sample, batch_sizes, warmup, iters, rounds, max_seconds)


def _measure(
    runtimes: dict, sample, batch_sizes, warmup, iters, rounds, max_seconds
) -> pd.DataFrame:
    """The timing loop of `benchmark`."""
    fns = {name: as_numpy_fn(m) for name, m in runtimes.items()}
    rows, per_round = [], []
    for bs in batch_sizes:
        x = _tile(np.asarray(sample), bs)
        for fn in fns.values():
            time_calls(fn, x, warmup)
        times: dict[str, list[float]] = {name: [] for name in fns}
        for r in range(rounds):
            for name, fn in fns.items():
                ts = time_calls(fn, x, -(-iters // rounds), max_seconds / rounds)
                times[name] += ts
                per_round.append(
                    {
                        "runtime": name,
                        "batch_size": bs,
                        "round": r,
                        "p50_ms": 1e3 * float(np.median(ts)),
                        "mean_ms": 1e3 * float(np.mean(ts)),
                    }
                )
        for name, ts in times.items():
            t = np.asarray(ts)
            rows.append(
                {
                    "runtime": name,
                    "batch_size": bs,
                    "p50_ms": 1e3 * np.percentile(t, 50),
                    "p95_ms": 1e3 * np.percentile(t, 95),
                    "p99_ms": 1e3 * np.percentile(t, 99),
                    "mean_ms": 1e3 * t.mean(),
                    "throughput_per_s": bs / t.mean(),
                    "calls": len(t),
                    "threads": _threads_of(runtimes[name]),
                }
            )
    df = pd.DataFrame(rows)
    df.attrs.update(thread_settings())
    df.attrs["per_round"] = per_round  # each round's p50 and mean: the pairs `latency_ratio` reads
    return df


def speedup(
    df: pd.DataFrame, baseline: str, candidate: str, batch_size: int, metric: str = "p50_ms"
) -> float:
    """How many times faster `candidate` is than `baseline` at one batch size (latency ratio, or throughput ratio)."""
    at = df[df.batch_size == batch_size].set_index("runtime")[metric]
    missing = {baseline, candidate} - set(at.index)
    if missing:
        raise ValueError(
            f"No rows for {sorted(missing)} at batch size {batch_size}; benchmark them first."
        )
    ratio = at[baseline] / at[candidate]
    return float(1 / ratio if metric == "throughput_per_s" else ratio)


@dataclass(frozen=True)
class LatencyRatio:
    """How many times faster `candidate` is than `baseline` at one batch size: the geometric mean
    over the benchmark's rounds of the paired per-round ratio, with its t-based 95 % interval."""

    baseline: str
    candidate: str
    batch_size: int
    ratio: float
    low: float
    high: float
    rounds: int
    metric: str = "p50 latency"

    @property
    def verdict(self) -> str:
        """faster / slower (the interval excludes 1), within noise, or unresolved (one round)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "unresolved"
        return "faster" if self.low > 1 else "slower" if self.high < 1 else "within noise"

    def interval(self) -> str:
        """'3.10x (95 % CI 2.80x to 3.40x, 5 rounds)', as a speed ratio."""
        return (
            f"{self.ratio:.2f}x (95 % CI {self.low:.2f}x to {self.high:.2f}x, {self.rounds} rounds)"
        )

    def sentence(self) -> str:
        """'At batch 1, onnxruntime is faster than eager: 3.10x (...) by p50 latency.'"""
        head = f"At batch {self.batch_size}, {self.candidate}"
        if self.verdict in ("faster", "slower"):
            return f"{head} is **{self.verdict}** than {self.baseline}: {self.interval()} by {self.metric}."
        return f"{head} and {self.baseline} are **{self.verdict}**: {self.interval()} by {self.metric}."

    def record(self, name: str) -> None:
        """Record `name` (the ratio), `name_low`, `name_high` and `name_verdict` for the gates."""
        record(name, self.ratio)
        record(f"{name}_low", self.low if math.isfinite(self.low) else -1e9)
        record(f"{name}_high", self.high if math.isfinite(self.high) else 1e9)
        record(f"{name}_verdict", self.verdict)


def latency_ratio(
    df: pd.DataFrame, baseline: str, candidate: str, batch_size: int, metric: str = "p50_ms"
) -> LatencyRatio:
    """`candidate`'s speed over `baseline`'s at `batch_size` from a `benchmark` frame, paired by
    round: `metric` "p50_ms" (latency) or "mean_ms" (throughput, samples per second)."""
    rounds = pd.DataFrame(df.attrs.get("per_round", []))
    if rounds.empty:
        raise ValueError("This frame has no per-round timings: measure it with `benchmark`.")
    at = rounds[rounds.batch_size == batch_size].pivot(
        index="round", columns="runtime", values=metric
    )
    missing = {baseline, candidate} - set(at.columns)
    if missing:
        raise ValueError(
            f"No rows for {sorted(missing)} at batch size {batch_size}; benchmark them first."
        )
    logs = np.log(at[baseline].to_numpy(float) / at[candidate].to_numpy(float))
    mean, low, high = claims.t_interval(logs)
    return LatencyRatio(
        baseline,
        candidate,
        batch_size,
        math.exp(mean),
        math.exp(low),
        math.exp(high),
        len(logs),
        "p50 latency" if metric == "p50_ms" else "throughput",
    )


def plot_latency(df: pd.DataFrame, batch_size: int = 1, ax=None):
    """Grouped bars of p50/p95/p99 latency per runtime at one batch size; returns (fig, ax)."""
    fig, ax = axes(ax, (6, 3.5))
    sub = df[df.batch_size == batch_size].set_index("runtime")[["p50_ms", "p95_ms", "p99_ms"]]
    sub.columns = ["p50", "p95", "p99"]
    sub.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("latency (ms)")
    ax.set_title(
        f"Latency at batch {batch_size} ({df.attrs.get('torch_threads', '?')} torch threads)"
    )
    return fig, ax


def plot_throughput(df: pd.DataFrame, ax=None):
    """Throughput (samples/s) against batch size, one line per runtime; returns (fig, ax)."""
    fig, ax = axes(ax, (6, 3.5))
    for name, sub in df.groupby("runtime", sort=False):
        ax.plot(
            sub.batch_size,
            sub.throughput_per_s,
            marker="o",
            label=f"{name} ({sub.threads.iloc[0]} threads)",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples / s")
    ax.set_title("Throughput")
    ax.legend()
    return fig, ax


async def _post(reader, writer, request: bytes) -> tuple[int, bytes, bool]:
    """Send one HTTP/1.1 request on a keep-alive connection; return (status, body, server closes)."""
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.partition(b":")
        key, value = key.strip().lower(), value.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"connection":
            close = value == b"close"
    return status, await reader.readexactly(length), close


async def _drive(
    url: str,
    bodies: list[bytes],
    expected: np.ndarray | None,
    clients: int,
    requests: int,
    timeout: float,
    content_type: str = "application/json",
) -> dict:
    """Send `requests` POSTs to /predict from `clients` keep-alive connections; count errors and wrong answers.

    A minimal HTTP/1.1 client on asyncio streams (as wrk or hey would be): a Python HTTP client
    library would spend more CPU per request than the service under test.
    """
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port or 80
    head = f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
    reqs = [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    latencies: list[float] = []
    errors: list[str] = []
    wrong, counter = 0, iter(range(requests))

    async def worker() -> None:
        nonlocal wrong
        conn = None
        for i in counter:
            k = i % len(reqs)
            t0 = time.perf_counter()
            try:
                conn = conn or await asyncio.open_connection(host, port)
                status, body, close = await asyncio.wait_for(_post(*conn, reqs[k]), timeout)
            except (
                OSError,
                asyncio.TimeoutError,
                asyncio.IncompleteReadError,
                ValueError,
                IndexError,
            ) as e:
                errors.append(f"{type(e).__name__}: {e}")
                conn, close = None, False
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"{status}: {body[:200].decode(errors='replace')}")
            elif expected is not None and json.loads(body)["predictions"] != expected[k].tolist():
                wrong += 1
            if close:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - t0
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {
        "requests": requests,
        "clients": clients,
        "errors": len(errors),
        "wrong": wrong,
        "seconds": seconds,
        "throughput_rps": requests / seconds,
        "p50_ms": float(1e3 * np.percentile(lat, 50)),
        "p95_ms": float(1e3 * np.percentile(lat, 95)),
        "p99_ms": float(1e3 * np.percentile(lat, 99)),
        "error_examples": errors[:3],
    }


def load_test(
    url: str,
    inputs: np.ndarray,
    *,
    expected: np.ndarray | None = None,
    clients: int = 32,
    requests: int = 1000,
    samples_per_request: int = 1,
    timeout: float = 60.0,
    send: str = "json",
) -> dict:
    """Drive a running service with concurrent clients; returns throughput, latency percentiles, errors.

    Request k sends `samples_per_request` rows of `inputs`, encoded once, up front (so the client
    spends its time on HTTP rather than encoding) as `send` says: "json", "npy", or "png"/"jpeg"
    (then `inputs` holds uint8 pixels, one image per request); answers are JSON. `expected` holds
    each row's expected prediction and every answer is checked against it. Runs its own event loop in a thread, so it
    works from a notebook cell (where a loop is already running) and from scripts alike.
    """
    images = send in ("png", "jpeg")  # an image file holds one image
    inputs = np.asarray(inputs, dtype=np.uint8 if images else np.float32)
    samples_per_request = 1 if images else samples_per_request
    n = len(inputs) // samples_per_request
    if n == 0:
        raise ValueError(
            f"Need at least samples_per_request={samples_per_request} inputs, got {len(inputs)}."
        )
    chunks = [slice(i * samples_per_request, (i + 1) * samples_per_request) for i in range(n)]
    encoded = [request_body(inputs[c.start] if images else inputs[c], send) for c in chunks]
    bodies = [body for body, _ in encoded]
    exp = None if expected is None else np.stack([np.asarray(expected)[c] for c in chunks])
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(
            asyncio.run, _drive(url, bodies, exp, clients, requests, timeout, encoded[0][1])
        ).result()
