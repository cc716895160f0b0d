"""Checkpoints of a `fit` run: written atomically, read with `weights_only=True`, resumed exactly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dlnb.runtime import atomic_write


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside `torch.compile` and DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # compile applied before DDP


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write `payload` with torch.save to a temporary file, fsync it, then rename it into place."""
    path = Path(path)
    with atomic_write(path, suffix=".pt.tmp") as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with `weights_only=True`; an unreadable file is a clear error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"Checkpoint {path} could not be read ({type(exc).__name__}: {exc}). It is corrupt or "
            "was not written by dlnb. Delete it to start the run over, or set checkpoint_dir elsewhere."
        ) from exc


def checkpoint_payload(state, callbacks: Sequence) -> dict:
    """Everything a `TrainState` needs to continue: weights, optimizer, schedule, history."""
    return {
        "model": unwrap_model(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler else None,
        "scaler": state.scaler.state_dict() if state.scaler else None,
        "epoch": state.epoch,
        "step": state.step,
        "stop": state.stop,
        "stop_reason": state.stop_reason,
        "history": state.history.records,
        "callbacks": [cb.state_dict() for cb in callbacks],
        "config": state.config.to_dict(),
    }


def restore(state, ckpt: dict, callbacks: Sequence) -> None:
    """Put a checkpoint's contents back into `state` (and its callbacks)."""
    unwrap_model(state.model).load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if state.scheduler and ckpt.get("scheduler"):
        state.scheduler.load_state_dict(ckpt["scheduler"])
    if state.scaler and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step = ckpt["epoch"], ckpt["step"]
    state.stop, state.stop_reason = ckpt.get("stop", False), ckpt.get("stop_reason", "")
    state.history.records = list(ckpt["history"])
    for cb, cb_state in zip(callbacks, ckpt.get("callbacks", []), strict=False):
        cb.load_state_dict(cb_state)
