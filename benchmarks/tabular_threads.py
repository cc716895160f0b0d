"""How many CPU threads should a small tabular network train with? One FT-Transformer training
step (the default FT-Transformer, batch 256, an Adult-like table: 6 numeric and 8 categorical
columns) timed with every thread count from 1 to the machine's CPU count, side by side:
interleaved rounds (the order rotates every round), the median milliseconds per step of each,
and the ratio of each to one thread. `dlnb.tabular.compare`'s default `threads` comes from it.

    python benchmarks/tabular_threads.py [--steps 20] [--rounds 5] [--batch 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from dlnb.runtime import cpu_threads  # noqa: E402
from dlnb.tabular.models import DEFAULTS, build_model  # noqa: E402


def step_ms(model, optimizer, batches, steps: int) -> float:
    """Milliseconds per training step (forward, backward, AdamW) over `steps` steps."""
    start = time.perf_counter()
    for i in range(steps):
        x_num, x_cat, y = batches[i % len(batches)]
        loss = F.cross_entropy(model(x_num, x_cat), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    """Time the step at every thread count and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    cards = [10, 17, 8, 16, 7, 6, 3, 42]
    model = build_model("ft_transformer", DEFAULTS["ft_transformer"], 6, cards, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [
        (
            torch.randn(args.batch, 6),
            torch.stack([torch.randint(c, (args.batch,)) for c in cards], 1),
            torch.randint(2, (args.batch,)),
        )
        for _ in range(4)
    ]
    counts = list(range(1, (os.cpu_count() or 1) + 1))
    times: dict[int, list[float]] = {n: [] for n in counts}
    for n in counts:  # warm-up
        with cpu_threads(n):
            step_ms(model, optimizer, batches, 3)
    for r in range(args.rounds):
        for n in counts[r % len(counts) :] + counts[: r % len(counts)]:
            with cpu_threads(n):
                times[n].append(step_ms(model, optimizer, batches, args.steps))
    one = statistics.median(times[1])
    print(f"FT-Transformer step, batch {args.batch}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    for n in counts:
        med = statistics.median(times[n])
        rounds = ", ".join(f"{t:.0f}" for t in times[n])
        print(f"threads={n}: median {med:.1f} ms/step ({rounds}); vs 1 thread: {med / one:.2f}x")


if __name__ == "__main__":
    main()
