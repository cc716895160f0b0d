"""Where the time of a training step goes: `torch.profiler` over a few steps like `fit`'s, each
phase (data, forward, loss, backward, optimizer) labelled with `record_function`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from dlnb.runtime import sync
from dlnb.train.config import TrainConfig, make_optimizer
from dlnb.train.loop import resolve_device
from dlnb.train.precision import autocast, autocast_dtype
from dlnb.train.step import call_model, compute_loss, optimizer_step, split_batch, to_device

PHASES = ("data", "forward", "loss", "backward", "optimizer")


@dataclass
class StepProfile:
    """What `profile_steps` measured: the profiler's table, milliseconds per step by phase, and
    the operators with the most self time (ms per step, by `sort_by`)."""

    table: str
    phase_ms: dict[str, float]
    operators: dict[str, float]
    sort_by: str
    device: str
    steps: int

    @property
    def step_ms(self) -> float:
        """Milliseconds of one whole step (the sum of the phases)."""
        return sum(self.phase_ms.values())


def _endless(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of `loader`, pass after pass (each pass reads it afresh, as an epoch does)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("profile_steps got an empty loader: there is no batch to profile.")


def profile_steps(
    model: nn.Module,
    loader,
    config: TrainConfig,
    *,
    steps: int = 5,
    warmup: int = 2,
    row_limit: int = 10,
) -> StepProfile:
    """Train `model` for `warmup` untimed, then `steps` profiled steps on batches of `loader`
    (read again when it runs out), with `config`'s device, optimizer, mixed precision and memory
    format.

    The table lists the operators by self time, CPU time on a CPU and CUDA time on a GPU
    (`key_averages().table(sort_by=..., row_limit=row_limit)`). `phase_ms` is the host time of
    each phase per step: on a GPU, where kernels run asynchronously, it is the time to launch
    them, and the device time is in the table.

    Args:
        model: the network to train (moved to the config's device).
        loader: training batches, read again when it runs out.
        config: the device, optimizer, mixed precision and memory format of the steps.
        steps: profiled training steps.
        warmup: untimed steps first (allocations, kernel selection, compilation).
        row_limit: operators listed in the table.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"Need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}.")
    device = resolve_device(config)
    model.to(device).train()
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    dtype = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    batches = _endless(loader)

    def step() -> None:
        with record_function("data"):
            x, y = split_batch(next(batches))
            x, y = to_device(x, device, config.channels_last), to_device(y, device)
        with record_function("forward"), autocast(device, dtype):
            logits = call_model(model, x)
        with record_function("loss"):
            loss = compute_loss(logits, y, config.loss, config.label_smoothing)
        with record_function("backward"):
            (scaler.scale(loss) if scaler else loss).backward()
        with record_function("optimizer"):
            optimizer_step(model, optimizer, scaler, config.grad_clip)

    for _ in range(warmup):
        step()
    sync(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    else:  # kineto's start/stop lines and a CUDA build's "no GPU" error are noise on a CPU
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    averages = prof.key_averages()
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    phase_ms = {evt.key: evt.cpu_time_total / steps / 1e3 for evt in averages if evt.key in PHASES}
    ops = sorted(
        (evt for evt in averages if evt.key not in PHASES),
        key=lambda evt: getattr(evt, sort_by),
        reverse=True,
    )
    return StepProfile(
        table=averages.table(sort_by=sort_by, row_limit=row_limit),
        phase_ms={phase: phase_ms.get(phase, 0.0) for phase in PHASES},
        operators={evt.key: getattr(evt, sort_by) / steps / 1e3 for evt in ops[:row_limit]},
        sort_by=sort_by,
        device=str(device),
        steps=steps,
    )


def describe_profile(profiles: Mapping[str, StepProfile], first: str, device_type: str) -> str:
    """Markdown from `profile_steps` results: where one step of `profiles[first]` went (share of
    each phase, the operators with the most self time), and which loader fetched a batch faster."""
    main = profiles[first]
    shares = ", ".join(f"{phase} {ms / main.step_ms:.0%}" for phase, ms in main.phase_ms.items())
    top = ", ".join(f"`{op}` ({ms:.2f} ms)" for op, ms in list(main.operators.items())[:3])
    fetch = " and ".join(
        f"{p.phase_ms['data']:.2f} ms from the {name}" for name, p in profiles.items()
    )
    fastest = min(profiles, key=lambda name: profiles[name].phase_ms["data"])
    text = (
        f"With the {first}, one step took {main.step_ms:.1f} ms on {main.device}: {shares}. "
        f"The operators with the most self time per step: {top}. Fetching a batch took {fetch} "
        f"(the {fastest} was quicker, in one profile of {main.steps} steps: a single measurement, "
        "not an interval)."
    )
    if device_type != "cpu":
        text += (
            " On a GPU these are host times: the kernels run asynchronously, their time is in the "
            "table's CUDA columns."
        )
    return text
