"""What does `dlnb.fit` cost over a hand-written PyTorch loop? Same model (LeNet-5), data (an
MNIST subset), seed and optimizer, timed in one run with interleaved repeats; the final weights
must agree. Target: ratio <= 1.05 on a CPU.

With CUDA, it also measures training images/s of LeNet-5 on full MNIST with the GPU-resident
loader (`dlnb.gpu_loader`) against a standard DataLoader (target >= 3x).

    python benchmarks/train_overhead.py [--train-subset 8000] [--epochs 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from dlnb.data.loaders import make_loaders
from dlnb.models import LeNet5  # noqa: E402
from dlnb.runtime import Timer, pick_device  # noqa: E402
from dlnb.train.config import TrainConfig  # noqa: E402
from dlnb.train.loop import fit  # noqa: E402
from dlnb.vision.datasets import mnist_tensors  # noqa: E402


def hand_loop(model, loaders, epochs: int, lr: float, seed: int, device: torch.device) -> dict:
    """The loop a practitioner writes by hand: train, then validate, each epoch."""
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for epoch in range(1, epochs + 1):
        loaders.train.generator.manual_seed(seed * 1000 + epoch)  # fit's per-epoch shuffle seed
        model.train()
        total, seen = 0.0, 0
        for x, y in loaders.train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            seen += len(y)
        model.eval()
        valid_loss, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loaders.valid:
                x, y = x.to(device), y.to(device)
                logits = model(x)
                valid_loss += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                n += len(y)
    return {"train_loss": total / seen, "valid_loss": valid_loss / n, "valid_accuracy": correct / n}


def dlnb_loop(model, loaders, epochs: int, lr: float, seed: int, device: torch.device) -> dict:
    """The same training with `dlnb.fit`."""
    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, amp="off", progress=False)
    return fit(model, loaders, config, device=device).records[-1]


def timed(loop, loaders, args, device) -> tuple[float, float, torch.nn.Module]:
    """Wall and CPU seconds of one run of `loop` from a freshly seeded LeNet-5."""
    torch.manual_seed(args.seed)
    model = LeNet5()
    cpu0 = time.process_time()
    with Timer(device) as t:
        loop(model, loaders, args.epochs, args.lr, args.seed, device)
    return t.seconds, time.process_time() - cpu0, model


def overhead(args, device: torch.device) -> float:
    """Interleaved repeats of fit and the hand loop; prints and returns the median time ratio."""
    x, y = mnist_tensors("train", subset=args.train_subset, seed=args.seed)
    loaders = make_loaders(x, y, batch_size=args.batch_size, seed=args.seed)
    loops = {"dlnb.fit": dlnb_loop, "hand loop": hand_loop}
    for loop in loops.values():  # warm-up: allocator, kernels, lazy imports
        timed(loop, loaders, args, device)
    wall = {name: [] for name in loops}
    cpu = {name: [] for name in loops}
    models = {}
    for i in range(args.repeats):
        order = list(loops) if i % 2 == 0 else list(reversed(loops))  # cancel drift
        for name in order:
            w, c, models[name] = timed(loops[name], loaders, args, device)
            wall[name].append(w)
            cpu[name].append(c)
    pair_ratios = [f / h for f, h in zip(wall["dlnb.fit"], wall["hand loop"], strict=True)]
    ratio = statistics.median(pair_ratios)
    cpu_ratio = statistics.median(cpu["dlnb.fit"]) / statistics.median(cpu["hand loop"])
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(
            models["dlnb.fit"].state_dict().values(),
            models["hand loop"].state_dict().values(),
            strict=True,
        )
    )
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {len(loaders.train.dataset)} "
        f"training images, batch {args.batch_size}, {args.epochs} epoch(s), {args.repeats} repeats"
    )
    for name in loops:
        print(
            f"  {name:<10} median wall {statistics.median(wall[name]):.3f} s, "
            f"median CPU {statistics.median(cpu[name]):.3f} s"
        )
    print(
        f"  fit / hand loop time ratio: {ratio:.3f} (median of interleaved pairs; "
        f"CPU-time ratio {cpu_ratio:.3f}; target <= 1.05)"
    )
    print(f"  final weights agree: max |difference| = {diff:.2e}")
    if diff > 1e-5:
        raise SystemExit("FAIL: dlnb.fit and the hand loop ended with different weights.")
    return ratio


def gpu_throughput(args, device: torch.device) -> float:
    """Training images/s with the GPU-resident loader against a standard DataLoader."""
    x, y = mnist_tensors("train", seed=args.seed)
    candidates = {
        "DataLoader": make_loaders(x, y, batch_size=512, seed=args.seed, valid_fraction=0.0),
        "GpuLoader": make_loaders(
            x, y, batch_size=512, seed=args.seed, valid_fraction=0.0, device=device
        ),
    }
    config = TrainConfig(epochs=1, lr=2e-3, seed=args.seed, progress=False)
    rates = {name: [] for name in candidates}
    for i in range(args.repeats + 1):
        for name, loaders in candidates.items():
            torch.manual_seed(args.seed)
            with Timer(device) as t:
                fit(LeNet5(), loaders, config, device=device)
            if i > 0:  # the first round warms up cuDNN and the allocator
                rates[name].append(len(x) / t.seconds)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    speedup = medians["GpuLoader"] / medians["DataLoader"]
    print(f"{torch.cuda.get_device_name(device)}: LeNet-5 on MNIST ({len(x)} images, batch 512)")
    for name, rate in medians.items():
        print(f"  {name:<10} {rate:,.0f} images/s")
    print(f"  GPU-resident loader speed-up: {speedup:.1f}x (target >= 3x)")
    return speedup


def main() -> None:
    """Parse arguments and run the comparisons this machine supports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-subset", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="device of the overhead comparison")
    args = parser.parse_args()
    overhead(args, pick_device(args.device))
    if torch.cuda.is_available():
        gpu_throughput(args, torch.device("cuda"))
    else:
        print("No CUDA device: skipping the GPU-resident loader throughput comparison.")


if __name__ == "__main__":
    main()
