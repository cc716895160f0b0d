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
    rounds = df.attrs["per_round"]
    assert len(rounds) == 2 * 2 * 2  # batch sizes x rounds x runtimes
    paired = bench.latency_ratio(df, "eager", "onnxruntime", 1)
    by_round = {(r["round"], r["runtime"]): r["p50_ms"] for r in rounds if r["batch_size"] == 1}
    logs = [np.log(by_round[(k, "eager")] / by_round[(k, "onnxruntime")]) for k in (0, 1)]
    assert paired.rounds == 2 and paired.ratio == pytest.approx(np.exp(np.mean(logs)))
    assert paired.low <= paired.ratio <= paired.high
    with pytest.raises(ValueError, match="No rows for"):
        bench.latency_ratio(df, "eager", "tensorrt", 1)
    fig, ax = bench.plot_throughput(df)
    assert len(ax.get_lines()) == 2
    fig, ax = bench.plot_latency(df)
    assert len(ax.patches) == 6  # p50/p95/p99 bars for two runtimes


def test_time_calls_stops_at_its_time_budget():
    import time

    times = bench.time_calls(lambda a: time.sleep(0.01), np.zeros(1), n=1000, max_seconds=0.05)
    assert 3 <= len(times) <= 10 and min(times) >= 0.009


def _frame(per_round):
    import pandas as pd

    df = pd.DataFrame({"runtime": ["a", "b"], "batch_size": [1, 1]})
    df.attrs["per_round"] = [
        {"runtime": name, "batch_size": 1, "round": r, "p50_ms": ms, "mean_ms": ms}
        for name, values in per_round.items()
        for r, ms in enumerate(values)
    ]
    return df


def test_latency_ratio_verdicts_and_sentences():
    faster = bench.latency_ratio(
        _frame({"a": [3.0, 3.3, 2.9, 3.1], "b": [1.0, 1.1, 1.0, 1.0]}), "a", "b", 1
    )
    assert faster.verdict == "faster" and faster.ratio == pytest.approx(3.0, rel=0.05)
    assert faster.sentence().startswith("At batch 1, b is **faster** than a: 3.0")
    assert "95 % CI" in faster.sentence() and "4 rounds) by p50 latency" in faster.sentence()
    slower = bench.latency_ratio(
        _frame({"a": [1.0, 1.1, 1.0, 1.0], "b": [3.0, 3.3, 2.9, 3.1]}), "a", "b", 1
    )
    assert slower.verdict == "slower" and "is **slower** than a" in slower.sentence()
    noise = bench.latency_ratio(
        _frame({"a": [1.0, 2.0, 1.0, 2.0], "b": [2.0, 1.0, 2.0, 1.0]}), "a", "b", 1
    )
    assert noise.verdict == "within noise" and "b and a are **within noise**" in noise.sentence()
    one = bench.latency_ratio(_frame({"a": [2.0], "b": [1.0]}), "a", "b", 1)
    assert one.verdict == "unresolved"
    import pandas as pd

    with pytest.raises(ValueError, match="no per-round timings"):
        bench.latency_ratio(pd.DataFrame({"runtime": []}), "a", "b", 1)
