"""dlnb.deploy.bench: latency and throughput of runtimes side by side, within a time budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.deploy import bench
from dlnb.deploy import export as deploy


@pytest.mark.slow
def test_benchmark_compares_runtimes_side_by_side(lenet, lenet_onnx):
    model, x = lenet
    runtimes = {"eager": model, "onnxruntime": deploy.ort_session(lenet_onnx, threads=1)}
    threads_before = torch.get_num_threads()
    df = bench.benchmark(
        runtimes,
        x.numpy(),
        batch_sizes=(1, 8),
        warmup=2,
        iters=20,
        rounds=2,
        max_seconds=float("inf"),
        torch_threads=1,
    )
    assert torch.get_num_threads() == threads_before  # restored after the run
    assert df.threads.tolist() == [1, 1, 1, 1] and df.attrs["torch_threads"] == 1
    assert len(df) == 4 and set(df.runtime) == set(runtimes) and set(df.batch_size) == {1, 8}
    assert (df.p50_ms <= df.p95_ms).all() and (df.p95_ms <= df.p99_ms).all()
    assert np.allclose(df.throughput_per_s, df.batch_size / (df.mean_ms / 1e3))
    assert (df.calls == 20).all()
    ratio = bench.speedup(df, "eager", "onnxruntime", 1)
    at1 = df[df.batch_size == 1].set_index("runtime").p50_ms
    assert ratio == pytest.approx(at1["eager"] / at1["onnxruntime"])
    with pytest.raises(ValueError, match="No rows for"):
        bench.speedup(df, "eager", "tensorrt", 1)
    fig, ax = bench.plot_throughput(df)
    assert len(ax.get_lines()) == 2
    fig, ax = bench.plot_latency(df)
    assert len(ax.patches) == 6  # p50/p95/p99 bars for two runtimes


def test_time_calls_stops_at_its_time_budget():
    import time

    times = bench.time_calls(lambda a: time.sleep(0.01), np.zeros(1), n=1000, max_seconds=0.05)
    assert 3 <= len(times) <= 10 and min(times) >= 0.009
