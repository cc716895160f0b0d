"""A learning-rate finder (Smith, 2017; fastai's `lr_find`): train for a few mini-batches while the
learning rate grows exponentially, and read a good one off the loss curve.

    sweep = lr_find(model, loaders.train, TrainConfig(weight_decay=0.01))
    plot_lr_find(sweep)
    config = TrainConfig(lr=sweep.suggestion)

The model and the optimizer are left exactly as they were: the sweep is a measurement, not training.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from dlnb.train.config import TrainConfig, make_optimizer
from dlnb.train.loop import resolve_device
from dlnb.train.step import call_model, compute_loss, split_batch, to_device

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LRSweep", "lr_find", "plot_lr_find"]


@dataclass
class LRSweep:
    """The learning rates tried, the smoothed loss after each, and the suggested learning rate."""

    lrs: list[float]
    losses: list[float]
    suggestion: float
    stopped_early: bool


def _endless(loader: Iterable) -> Iterator:
    """The batches of `loader`, pass after pass (a fresh shuffle each pass); a one-shot iterable
    ends after its first pass."""
    first = True
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty and first:
            raise ValueError("lr_find got an empty loader: there is nothing to train on.")
        if empty:
            return
        first = False


def _suggest(lrs: list[float], losses: list[float]) -> float:
    """fastai's `lr_min`: the learning rate of the lowest smoothed loss, divided by 10."""
    return lrs[int(np.argmin(losses))] / 10


def lr_find(
    model: nn.Module,
    loader,
    config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_steps: int = 100,
    beta: float = 0.9,
    diverge: float = 4.0,
) -> LRSweep:
    """Sweep the learning rate from `start_lr` to `end_lr` over `num_steps` mini-batches of `loader`.

    One optimizer step per batch (the loader is cycled if it is shorter), its loss smoothed by an
    exponential moving average (bias-corrected); float32 throughout. Afterwards the model's
    weights, buffers and train/eval mode and the optimizer's state and learning rates are restored.

    Args:
        model: the network to sweep (moved to the config's device).
        loader: training batches, cycled when shorter than `num_steps`.
        config: the loss and the device (default `TrainConfig()`).
        optimizer: the optimizer to sweep, else `make_optimizer(model, config)`.
        start_lr: the first learning rate.
        end_lr: the last learning rate (reached geometrically).
        num_steps: mini-batches in the sweep, one learning rate each.
        beta: the smoothing of the loss's moving average.
        diverge: stop once the smoothed loss exceeds this many times its minimum.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"Need 0 < start_lr < end_lr, got {start_lr} and {end_lr}.")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, got {num_steps}.")
    config = config or TrainConfig()
    device = resolve_device(config)
    model.to(device)
    optimizer = optimizer or make_optimizer(model, config)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    factor = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    average, best, stopped_early = 0.0, math.inf, False
    try:
        model.train()
        for i, batch in enumerate(itertools.islice(_endless(loader), num_steps)):
            lr = start_lr * factor**i
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = split_batch(batch)
            x, y = to_device(x, device), to_device(y, device)
            loss = compute_loss(call_model(model, x), y, config.loss, config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            average = beta * average + (1 - beta) * value
            smoothed = average / (1 - beta ** (i + 1))
            if not math.isfinite(smoothed) or smoothed > diverge * best:
                stopped_early = True
                break
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    if not losses:
        raise ValueError(
            f"The loss diverged at the first learning rate ({start_lr}); lower start_lr."
        )
    return LRSweep(lrs, losses, _suggest(lrs, losses), stopped_early)


def plot_lr_find(sweep: LRSweep, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """The smoothed loss against the learning rate (log scale), the suggestion marked."""
    from dlnb.plots import axes

    fig, ax = axes(ax, (6, 3.5))
    ax.plot(sweep.lrs, sweep.losses)
    ax.axvline(sweep.suggestion, color="tab:red", linestyle="--")
    ax.set_xscale("log")
    ax.set(
        xlabel="learning rate (log scale)",
        ylabel="smoothed training loss",
        title=f"learning-rate finder: suggestion {sweep.suggestion:.1e}",
    )
    ax.grid(alpha=0.3)
    return fig, ax
