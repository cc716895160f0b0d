"""ONNX Runtime against eager PyTorch (and TorchScript) for LeNet-5 on this machine's CPU.

    python benchmarks/onnx_vs_eager.py [--threads N] [--large-batch 256]

Prints a latency/throughput table and the speed-up of ONNX Runtime over eager at batch 1
(p50 latency ratio) and at a large batch (throughput ratio). Both runtimes use the same number
of intra-op threads. Target: ONNX Runtime at least 2x eager at batch 1.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlnb import deploy, vision  # noqa: E402
from dlnb.models import LeNet5  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="threads for torch and ONNX Runtime",
    )
    p.add_argument("--large-batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=500)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = LeNet5().eval()  # latency does not depend on the weights' values
    x, _ = vision.mnist_tensors("test", subset=a.large_batch, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = deploy.export_onnx(model, x[:2], Path(tmp) / "lenet5.onnx")
        runtimes = {
            "eager": model,
            "torchscript": deploy.export_torchscript(model, x[:2]),
            "onnxruntime": deploy.ort_session(path, threads=a.threads),
        }
        deploy.parity(model, runtimes["onnxruntime"], x.numpy())  # raises if the export is wrong
        df = deploy.benchmark(
            runtimes, x.numpy(), batch_sizes=(1, 32, a.large_batch), iters=a.iters, max_seconds=4.0
        )
    print(
        f"CPU: {platform.processor() or platform.machine()}, {df.attrs['cpu_count']} logical cores; "
        f"torch {torch.__version__} threads={df.attrs['torch_threads']}, ONNX Runtime intra-op threads={a.threads}"
    )
    print(df.round(3).to_string(index=False))
    one = deploy.speedup(df, "eager", "onnxruntime", 1, "p50_ms")
    large = deploy.speedup(df, "eager", "onnxruntime", a.large_batch, "throughput_per_s")
    print(
        f"ONNX Runtime / eager at batch 1 (p50 latency): {one:.2f}x (target >= 2x: {'met' if one >= 2 else 'MISSED'})"
    )
    print(f"ONNX Runtime / eager at batch {a.large_batch} (throughput): {large:.2f}x")


if __name__ == "__main__":
    main()
