"""Checkpoints of a `fit` run: written atomically, read with `weights_only=True`, resumed exactly."""

from __future__ import annotations

import hashlib
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlnb.runtime import atomic_write

#: Config fields a resume may change: where and how visibly it runs, not what it computes.
RESUME_MAY_CHANGE = frozenset(
    {
        "checkpoint_dir",
        "resume",
        "keep_optimizer",
        "progress",
        "live_plot",
        "device",
        "compile",
        "channels_last",
    }
)
#: How many examples, spread over the data set, the fingerprint hashes.
FINGERPRINT_SAMPLES = 16


class ResumeMismatchError(ValueError):
    """A checkpoint was written by a run with another config or other data."""


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


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the `*.pt.tmp` files a run killed while writing a checkpoint left in `folder`."""
    orphans = sorted(Path(folder).glob("*.pt.tmp")) if Path(folder).is_dir() else []
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with `weights_only=True`; an unreadable or altered file is a clear error."""
    try:
        with zipfile.ZipFile(path) as z:  # torch.load itself does not check the CRCs
            if (bad := z.testzip()) is not None:
                raise ValueError(f"member {bad} fails its CRC check: the file was altered")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"Checkpoint {path} could not be read ({type(exc).__name__}: {exc}). It is corrupt or "
            "was not written by dlnb. Delete it to start the run over, or set checkpoint_dir elsewhere."
        ) from exc


def _feed(h, obj) -> None:
    """Add `obj` (tensors, arrays, containers, scalars, strings) to the hash `h`."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():  # an empty tensor (a table without categoricals) has no bytes to hash
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            h.update(str(key).encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _feed(h, value)
    elif isinstance(obj, np.ndarray) or hasattr(obj, "__array_interface__"):  # e.g. PIL images
        array = np.ascontiguousarray(obj)
        h.update(f"{array.dtype}{array.shape}".encode() + array.tobytes())
    else:
        text = repr(obj)
        h.update((type(obj).__name__ if " at 0x" in text else text).encode())


def _spread(n: int) -> list[int]:
    """Up to `FINGERPRINT_SAMPLES` indices spread evenly over `range(n)`."""
    return np.linspace(0, n - 1, min(n, FINGERPRINT_SAMPLES)).astype(int).tolist()


def _sample(loader) -> tuple[int | None, list]:
    """The number of examples behind `loader` and a few of them, spread evenly."""
    dataset: Any = getattr(loader, "dataset", None)
    streamed = isinstance(dataset, torch.utils.data.IterableDataset)  # no indexing: sizes only
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__") and not streamed:
        return len(dataset), [dataset[i] for i in _spread(len(dataset))]
    x, y = getattr(loader, "x", None), getattr(loader, "y", None)  # dlnb's GpuLoader
    if isinstance(y, torch.Tensor) and x is not None:
        idx = torch.tensor(_spread(len(y)), device=y.device)
        return len(y), [tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx], y[idx]]
    return None, []


def data_fingerprint(loaders) -> dict:
    """Sizes and a cheap hash (a few examples, augmentations seeded) of the train and valid data."""
    fingerprint = {}
    for split in ("train", "valid"):
        loader = getattr(loaders, split, None)
        if loader is None:
            continue
        state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):  # seeded: random augmentations hash the same
            torch.manual_seed(0)
            np.random.seed(0)
            random.seed(0)
            try:
                n, items = _sample(loader)
            finally:
                np.random.set_state(state[0])
                random.setstate(state[1])
        h = hashlib.sha256()
        _feed(h, items)
        fingerprint[split] = {
            "examples": n,
            "batch_size": getattr(loader, "batch_size", None),
            "sha256": h.hexdigest()[:16],
        }
    return fingerprint


def check_resumable(ckpt: dict, config, fingerprint: dict, path: str | Path) -> None:
    """Refuse to resume from `ckpt` when its run had another config or other data."""
    saved, now = ckpt.get("config", {}), config.to_dict()
    may_change = set(RESUME_MAY_CHANGE)
    if saved.get("scheduler") is None and now["scheduler"] is None:
        may_change.add("epochs")  # without a schedule over the whole run, a run may be extended
    changes = [
        f"{key} {saved[key]!r} -> {now[key]!r}"
        for key in sorted(saved.keys() & now.keys())
        if key not in may_change and saved[key] != now[key]
    ]
    old_data = ckpt.get("data") or {}  # checkpoints written before fingerprints existed have none
    for split in sorted(old_data.keys() | fingerprint.keys()) if old_data else []:
        before, after = old_data.get(split), fingerprint.get(split)
        if before != after:
            changes.append(f"{split} data {before} -> {after}")
    if changes:
        raise ResumeMismatchError(
            f"Checkpoint {path} was written by a run with other settings or data: "
            f"{'; '.join(changes)}. Resuming would silently mix the two runs. Resume with the "
            "settings and data it was trained with, or start over: resume=False (overwrites it), "
            "another checkpoint_dir, or delete the file."
        )


def checkpoint_payload(
    state, callbacks: Sequence, fingerprint: dict | None = None, optimizer: bool = True
) -> dict:
    """Everything a `TrainState` needs to continue: weights, optimizer (unless `optimizer=False`,
    e.g. once training ended), schedule, history, and the data `fingerprint` it was trained on."""
    return {
        "model": unwrap_model(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict() if optimizer else None,
        "scheduler": state.scheduler.state_dict() if state.scheduler else None,
        "scaler": state.scaler.state_dict() if state.scaler else None,
        "epoch": state.epoch,
        "step": state.step,
        "stop": state.stop,
        "stop_reason": state.stop_reason,
        "history": state.history.records,
        "callbacks": [cb.state_dict() for cb in callbacks],
        "config": state.config.to_dict(),
        "data": fingerprint,
    }


def restore(state, ckpt: dict, callbacks: Sequence) -> None:
    """Put a checkpoint's contents back into `state` (and its callbacks)."""
    unwrap_model(state.model).load_state_dict(ckpt["model"])
    if ckpt.get("optimizer") is not None:
        state.optimizer.load_state_dict(ckpt["optimizer"])
    elif ckpt["epoch"] < state.config.epochs and not ckpt.get("stop", False):
        print(
            "The checkpoint has no optimizer state (it was dropped when that run ended; "
            "TrainConfig(keep_optimizer=True) keeps it): training goes on with a fresh optimizer.",
            flush=True,
        )
    if state.scheduler and ckpt.get("scheduler"):
        state.scheduler.load_state_dict(ckpt["scheduler"])
    if state.scaler and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step = ckpt["epoch"], ckpt["step"]
    state.stop, state.stop_reason = ckpt.get("stop", False), ckpt.get("stop_reason", "")
    state.history.records = list(ckpt["history"])
    for cb, cb_state in zip(callbacks, ckpt.get("callbacks", []), strict=False):
        cb.load_state_dict(cb_state)
