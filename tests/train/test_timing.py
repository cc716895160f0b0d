"""dlnb.train.timing: interleaved matmul timing, the timer trap, and sentences worded by intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dlnb.train.timing import (
    accelerator_effect,
    describe_accelerator,
    describe_matmul,
    describe_timer_trap,
    matmul_rates,
    timer_trap,
    trap_effect,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _rates(by_size: dict[int, list[float]], device: str = "cpu") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"repeat": r, "device": device, "n": n, "gflops": g}
            for n, values in by_size.items()
            for r, g in enumerate(values)
        ]
    )


def test_matmul_rates_and_the_timer_trap_measure_every_repeat():
    rates = matmul_rates([8, 32], ["cpu"], repeats=3)
    assert len(rates) == 6 and list(rates.repeat) == [0, 0, 1, 1, 2, 2]
    assert list(rates.n) == [8, 32] * 3 and (rates.gflops > 0).all()
    trap = timer_trap("cpu", 16, repeats=4)
    assert len(trap) == 4 and (trap[["unsynced_s", "synced_s"]] > 0).all().all()
    with pytest.raises(ValueError, match="at least one size"):
        matmul_rates([], ["cpu"])


def test_describe_matmul_follows_the_paired_interval():
    faster = describe_matmul(
        _rates({128: [10, 11, 9, 10, 12], 1024: [40, 44, 38, 41, 45]}), "cpu", 2
    )
    assert "from 10.0 GFLOP/s at n = 128 to 41.0 at n = 1024" in faster
    assert "large products ran at 4.0" in faster and "95 % CI" in faster
    assert "keep the cores busy" in faster
    slower = describe_matmul(
        _rates({128: [40, 44, 38, 41, 45], 1024: [10, 11, 9, 10, 12]}), "cpu", 2
    )
    assert "slower per operation" in slower
    noise = describe_matmul(
        _rates({128: [10, 30, 12, 28, 20], 1024: [25, 11, 27, 13, 20]}), "cpu", 2
    )
    assert "cannot tell the two apart" in noise and "busy" in noise


def test_describe_accelerator_with_and_without_a_gpu():
    rates = pd.concat(
        [_rates({1024: [50, 55, 52]}), _rates({1024: [5000, 5600, 5100]}, device="cuda:0")]
    )
    text = describe_accelerator(rates, "cuda:0")
    effect = accelerator_effect(rates, "cuda:0")
    assert effect.verdict == "better" and np.exp(effect.low) > 50
    assert "At n = 1024 the cuda:0 device ran at 5,100.0 GFLOP/s (median)" in text
    assert "no accelerator" in describe_accelerator(_rates({1024: [50, 55]}), "cpu")


def test_the_timer_trap_in_words_on_each_device():
    same = pd.DataFrame(
        {
            "repeat": range(6),
            "unsynced_s": [1.0, 1.1, 0.9, 1.0, 1.05, 0.95],
            "synced_s": [1.02, 1.08, 0.93, 1.01, 1.0, 0.97],
        }
    )
    assert trap_effect(same).verdict == "equivalent"
    assert "On a CPU the two agree within a factor of 2" in describe_timer_trap(same, "cpu", 1024)
    fooled = same.assign(unsynced_s=same.unsynced_s * 1e-3)
    gpu = describe_timer_trap(fooled, "cuda:0", 4096)
    assert "timed the launches of the products" in gpu and "95 % CI" in gpu
    assert "No GPU here" in describe_timer_trap(fooled, "cpu", 1024)
    noisy = same.assign(synced_s=[0.2, 5.0, 0.3, 4.0, 0.25, 6.0])
    assert "cannot show that they agree" in describe_timer_trap(noisy, "cpu", 1024)


def test_ratios_are_given_to_two_significant_figures_and_wide_intervals_are_flagged():
    from types import SimpleNamespace

    from dlnb.train.timing import _times

    wide = SimpleNamespace(diff=math.log(65.73), low=math.log(5.76), high=math.log(749.46), n=5)
    assert _times(wide) == (
        "66x (95 % CI 5.8x to 750x over 5 repeats; an interval this wide means the ratio is "
        "barely estimated)"
    )
    narrow = SimpleNamespace(diff=math.log(1.09), low=math.log(0.98), high=math.log(1.21), n=5)
    assert _times(narrow) == "1.1x (95 % CI 0.98x to 1.2x over 5 repeats)"
