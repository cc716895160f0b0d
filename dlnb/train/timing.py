"""Timing a device honestly: matrix-multiply throughput in interleaved repeats, the unsynchronised
timer trap, and the sentences that report them with their 95 % intervals.

    rates = matmul_rates([128, 1024], "cpu", repeats=5)     # one row per (repeat, device, n)
    print(describe_matmul(rates, "cpu", threads=2))          # large vs small, paired by repeat
    trap = timer_trap("cuda", n=4096, repeats=10)            # synced and unsynced time per product
    print(describe_timer_trap(trap, "cuda"))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlnb import claims
from dlnb.runtime import Timer, sync

if TYPE_CHECKING:
    import pandas as pd


def matmul_rates(
    sizes: Sequence[int], devices: Sequence[str | torch.device] = ("cpu",), repeats: int = 5
) -> pd.DataFrame:
    """Float32 GFLOP/s (2 n^3 per product) per (repeat, device, n), in interleaved order (every
    size and device once per repeat), after one untimed product each. A measurement times one
    product, or enough small ones back to back to make about 2^27 multiply-adds (64 at n = 128),
    so that no reading is shorter than the timer's own noise."""
    import pandas as pd

    if repeats < 1 or not sizes:
        raise ValueError("matmul_rates needs at least one size and one repeat.")
    pairs = {}
    for d in map(torch.device, devices):
        for n in sizes:
            a, b = torch.randn(n, n, device=d), torch.randn(n, n, device=d)
            a @ b  # the first call pays for kernel selection and memory allocation
            pairs[(str(d), n)] = (a, b)
    rows = []
    for r in range(repeats):
        for (device, n), (a, b) in pairs.items():
            products = max(1, round(2**27 / n**3))
            with Timer(a.device) as timer:
                for _ in range(products):
                    a @ b
            gflops = 2 * n**3 * products / timer.seconds / 1e9
            rows.append({"repeat": r, "device": device, "n": n, "gflops": gflops})
    return pd.DataFrame(rows)


def _ratio(ours: np.ndarray, base: np.ndarray, names: tuple[str, str], band: float = 0.0):
    """The paired effect on log scale of two per-repeat measurements (ours over base)."""
    return claims.paired_effect(np.log(ours), np.log(base), names=names, metric="log", band=band)


def _sig2(x: float) -> str:
    """`x` rounded to two significant figures, without exponent notation."""
    if not math.isfinite(x) or x == 0:
        return f"{x:g}"
    digits = 1 - math.floor(math.log10(abs(x)))
    return f"{round(x, digits):,.{max(digits, 0)}f}"


def _times(effect) -> str:
    """A ratio and its interval to two significant figures; flagged when the interval spans more
    than a factor of 10 (the ratio is then barely estimated)."""
    low, high = math.exp(effect.low), math.exp(effect.high)
    text = (
        f"{_sig2(math.exp(effect.diff))}x (95 % CI {_sig2(low)}x to {_sig2(high)}x over "
        f"{effect.n} repeats"
    )
    if high > 10 * low:
        text += "; an interval this wide means the ratio is barely estimated"
    return text + ")"


def describe_matmul(rates: pd.DataFrame, device: str, threads: int) -> str:
    """Markdown: how throughput on `device` changes from the smallest size to the largest, paired
    by repeat, worded by the interval's verdict (faster / slower / within noise)."""
    on = rates[rates.device == device].pivot(index="repeat", columns="n", values="gflops")
    small, large = on.columns.min(), on.columns.max()
    effect = _ratio(on[large].to_numpy(), on[small].to_numpy(), (f"n = {large}", f"n = {small}"))
    medians = on.median()
    head = (
        f"On {device} ({threads} threads) the median throughput went from {medians[small]:.1f} "
        f"GFLOP/s at n = {small} to {medians[large]:.1f} at n = {large} (best median "
        f"{medians.max():.1f} at n = {medians.idxmax()}): large products ran at {_times(effect)} "
        "the throughput of small ones. "
    )
    if effect.verdict == "better":
        return head + (
            "Small products spend much of their time on overheads (waking threads, moving "
            "data); large ones keep the cores busy computing."
        )
    if effect.verdict == "worse":
        return head + (
            "Here the large products were slower per operation: their matrices outgrow the "
            "caches, or the machine was busier while they ran."
        )
    return head + (
        "The interval covers 1: this run cannot tell the two apart (a busy machine, or too "
        "few repeats)."
    )


def describe_accelerator(rates: pd.DataFrame, device: str) -> str:
    """Markdown: the accelerator's throughput over the CPU's at the largest size, paired by
    repeat; or, without an accelerator, what this section would have shown."""
    if device == "cpu" or device not in set(rates.device):
        return (
            f"This run has no accelerator (the device is {device}), so the GPU half of this "
            "notebook did not run. On a machine with a CUDA GPU this section adds a GPU column: "
            "we expect its thousands of cores to multiply large matrices many times faster than "
            "the CPU does (an expectation, not measured here), and that ratio is why the rest of the curriculum trains on a GPU when it can. Run the "
            "notebook there (the nightly runner does) to see the ratio for your GPU."
        )
    n = rates.n.max()
    at = rates[rates.n == n].pivot(index="repeat", columns="device", values="gflops")
    effect = accelerator_effect(rates, device)
    return (
        f"At n = {n} the {device} device ran at {at[device].median():,.1f} GFLOP/s (median), "
        f"{_times(effect)} the CPU's: the difference between a training run of a minute and one "
        f"of {math.exp(effect.diff):,.0f} minutes."
    )


def accelerator_effect(rates: pd.DataFrame, device: str):
    """The accelerator's throughput over the CPU's at the largest size (log-scale paired effect)."""
    at = rates[rates.n == rates.n.max()].pivot(index="repeat", columns="device", values="gflops")
    return _ratio(at[device].to_numpy(), at["cpu"].to_numpy(), (device, "cpu"))


def timer_trap(device: str | torch.device, n: int, repeats: int = 10) -> pd.DataFrame:
    """Time one `n x n` product per repeat twice: read the clock without waiting for the device
    (`unsynced_s`), then with a synchronising `Timer` (`synced_s`)."""
    import pandas as pd

    dev = torch.device(device)
    a = torch.randn(n, n, device=dev)
    a @ a  # warm-up
    rows = []
    for r in range(repeats):
        sync(dev)  # nothing queued before either reading
        with Timer(dev, sync=False) as unsynced:
            a @ a  # on a GPU, returns as soon as the kernel is queued
        sync(dev)
        with Timer(dev) as synced:
            a @ a
        rows.append({"repeat": r, "unsynced_s": unsynced.seconds, "synced_s": synced.seconds})
    return pd.DataFrame(rows)


def trap_effect(trap: pd.DataFrame, band: float = math.log(2)):
    """Synced over unsynced time per product, paired by repeat on log scale; `band` (log units)
    makes "the two agree" a claim that the interval can support."""
    return _ratio(
        trap.synced_s.to_numpy(), trap.unsynced_s.to_numpy(), ("synced", "unsynced"), band
    )


def describe_timer_trap(trap: pd.DataFrame, device: str, n: int) -> str:
    """The trap's result in words: on a GPU how much time the unsynchronised timer missed; on a
    CPU whether the two timers agree (within a factor of 2, by the interval)."""
    effect = trap_effect(trap)
    head = (
        f"{len(trap)} products of {n} x {n} matrices on {device}, each timed both ways: the "
        f"synchronised timer read {_times(effect)} what the unsynchronised one read. "
    )
    if device.startswith("cuda"):
        if effect.verdict == "better":
            return head + (
                "The unsynchronised timer timed the launches of the products, not the products."
            )
        return head + (
            "Here the unsynchronised timer was not clearly fooled: the products may be too small "
            "to outlast their launch; raise n."
        )
    if effect.verdict == "equivalent":
        verdict = (
            "the two agree within a factor of 2 (the equivalence margin, an assumption of this "
            "lesson: closer than that counts as the same time)"
        )
    elif effect.verdict == "better":
        verdict = (
            "the synchronised timer read longer, which on a CPU is timing noise from a busy machine"
        )
    else:
        verdict = "this run cannot show that they agree (timing noise from a busy machine)"
    return head + (
        f"On a CPU {verdict}: every product is finished when `a @ a` returns, and synchronising "
        "is a no-op. This is the half of the demonstration a CPU can show. On a CUDA GPU the "
        "unsynchronised timer reads only the launches, microseconds each, while the products "
        "take milliseconds, so it reports a small fraction of the real time and a throughput "
        "beyond the GPU's peak. No GPU here, so that half did not run."
    )
