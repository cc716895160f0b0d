"""One training epoch of `fit`: its batches, gradient accumulation, and the tally of its losses."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlnb.train.callbacks import Callback
from dlnb.train.config import TrainState
from dlnb.train.distributed import SingleProcess
from dlnb.train.precision import autocast
from dlnb.train.step import (
    ExplosionGuard,
    LossTally,
    call_model,
    compute_loss,
    count_correct,
    optimizer_step,
    split_batch,
    to_device,
)

__all__ = ["Run", "train_epoch"]


@dataclass
class Run:
    """What one `fit` call works with, besides the `TrainState` its callbacks see."""

    state: TrainState
    strategy: SingleProcess
    callbacks: list[Callback]
    valid_loader: Any
    wrapped: nn.Module  # the model as the strategy wrapped it (in DistributedDataParallel)
    forward: nn.Module  # what the training steps call: `wrapped`, compiled if asked
    evaluator: nn.Module  # what validation calls
    amp_dtype: torch.dtype | None
    checkpoint: Path | None = None
    fingerprint: dict | None = None
    guard: ExplosionGuard = field(default_factory=ExplosionGuard)


def train_epoch(run: Run) -> dict:
    """One epoch of training steps; the epoch's mean loss (and accuracy when classifying)."""
    state, config = run.state, run.state.config
    run.forward.train()
    tally = LossTally(run.guard, sync_every=1 if state.device.type == "cpu" else 32)
    correct = torch.zeros((), device=state.device, dtype=torch.long)
    classify = config.loss in ("cross_entropy", "bce")
    state.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(state.train_loader):
        if i >= state.batches_per_epoch:
            break
        state.batch = i + 1
        loss, logits, y = _train_batch(run, i, batch)
        if classify:
            correct += count_correct(logits.detach(), y, config.loss)
        tally.add(loss, len(y), state)
        for cb in run.callbacks:
            cb.on_batch_end(state)
    tally.flush(state)
    totals = run.strategy.reduce_sum(
        {"loss": tally.loss_sum, "seen": tally.seen, "correct": int(correct)}
    )
    seen_all = max(totals["seen"], 1)
    metrics = {"train_loss": totals["loss"] / seen_all}
    if classify:
        metrics["train_accuracy"] = totals["correct"] / seen_all
    return metrics


def _train_batch(run: Run, i: int, batch) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Forward and backward of the epoch's batch `i`, then the optimizer step when `i` ends a
    gradient-accumulation group; the batch's loss, logits and targets."""
    state, config = run.state, run.state.config
    x, y = split_batch(batch)
    x, y = to_device(x, state.device, config.channels_last), to_device(y, state.device)
    k = config.grad_accum
    group_end = min((i // k + 1) * k, state.batches_per_epoch)  # the optimizer steps after it
    group_size = group_end - (i // k) * k  # the last group of an epoch may be shorter
    # Under DDP, gradients are averaged across ranks only on the last micro-batch of a group.
    last = i + 1 == group_end
    with contextlib.nullcontext() if last else run.strategy.no_sync(run.wrapped):
        with autocast(state.device, run.amp_dtype):
            logits = call_model(run.forward, x)
            loss = compute_loss(logits, y, config.loss, config.label_smoothing, state.loss_weight)
        scaled = loss / group_size if group_size > 1 else loss
        (state.scaler.scale(scaled) if state.scaler else scaled).backward()
    if last:
        _optimizer_step(state)
    return loss, logits, y


def _optimizer_step(state: TrainState) -> None:
    """One optimizer step (unscale, clip, step, zero the gradients), then one of the schedule."""
    optimizer_step(state.model, state.optimizer, state.scaler, state.config.grad_clip)
    if state.scheduler is not None:
        state.scheduler.step()
    state.step += 1
