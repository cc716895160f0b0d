"""One training loop for every model of the curriculum: `fit`, `evaluate`, `predict`.

A batch is `(x, y)`; `x` is a Tensor (`model(x)`), a tuple of Tensors (`model(*x)`) or a dict of
Tensors (`model(**x)`, e.g. a Hugging Face model, whose `.logits` are used). dlnb computes the
loss from the logits, so the same loop serves CNNs, tabular models and transformers.

The same `fit` runs unchanged under `torchrun`: when a process group is up (see
`dlnb.train.distributed.init_distributed`) its strategy (`dlnb.train.distributed.current_strategy`)
wraps the model in DistributedDataParallel, each rank trains on its shard of the data (the loader's
batch size is per rank), metrics are summed over ranks, and only rank 0 prints progress and writes
checkpoints. In one process every hook of the strategy does nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from dlnb.models import eval_mode
from dlnb.runtime import model_device, pick_device, seed_everything
from dlnb.train.callbacks import Callback, LivePlot, ProgressBar
from dlnb.train.checkpoint import (
    check_resumable,
    checkpoint_payload,
    data_fingerprint,
    load_checkpoint,
    remove_orphans,
    restore,
    save_checkpoint,
)
from dlnb.train.config import (
    NonFiniteLossError,
    TrainConfig,
    TrainState,
    batches_per_epoch,
    make_optimizer,
    make_scheduler,
)
from dlnb.train.distributed import SingleProcess, current_strategy, rank_device
from dlnb.train.epoch import Run, train_epoch
from dlnb.train.history import History
from dlnb.train.losses import class_weights, loader_labels
from dlnb.train.precision import autocast, autocast_dtype
from dlnb.train.step import (
    call_model,
    compute_loss,
    count_correct,
    split_batch,
    to_device,
)

__all__ = ["evaluate", "fit", "predict", "resolve_device"]


def resolve_device(config: TrainConfig) -> torch.device:
    """The device a run of `config` uses in this process (this rank's GPU under torchrun)."""
    return rank_device(pick_device(config.device))


# --- the loop ------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    loaders,
    config: TrainConfig | None = None,
    callbacks: Iterable[Callback] = (),
    *,
    device: torch.device | None = None,
) -> History:
    """Train `model` on `loaders.train`, validating on `loaders.valid` after each epoch.

    `device` is the run's resolved device; by default `resolve_device(config)`. With
    `config.checkpoint_dir`, each epoch ends with a checkpoint and a rerun resumes from it.
    """
    run = _set_up(model, loaders, config or TrainConfig(), callbacks, device)
    state = run.state
    for cb in run.callbacks:
        cb.on_fit_start(state)
    while state.epoch < state.config.epochs and not state.stop:
        _run_epoch(run)
    for cb in run.callbacks:
        cb.on_fit_end(state)
    state.history.stop_reason = state.stop_reason
    return state.history


def _set_up(
    model: nn.Module,
    loaders,
    config: TrainConfig,
    callbacks: Iterable[Callback],
    device: torch.device | None,
) -> Run:
    """Everything a run needs before its first epoch, resumed from its checkpoint if it has one."""
    device = device or resolve_device(config)
    strategy = current_strategy()
    train_loader, valid_loader = _rank_loaders(loaders, config, strategy)
    callbacks = _default_callbacks(callbacks, config, strategy)
    amp_dtype = autocast_dtype(config.amp, device)
    state = _make_state(model, config, device, train_loader, amp_dtype)
    checkpoint, fingerprint = _resume(state, loaders, callbacks, strategy)
    wrapped = strategy.wrap(model, device)
    # torch.compile of a Module is an OptimizedModule, a Module (its stubs say only "callable").
    forward = cast(nn.Module, torch.compile(wrapped)) if config.compile else wrapped
    strategy.log_start(train_loader, device)
    return Run(
        state=state,
        strategy=strategy,
        callbacks=callbacks,
        valid_loader=valid_loader,
        wrapped=wrapped,
        forward=forward,
        # Under DDP, evaluate the plain module: DDP's forward would sync buffers across ranks,
        # which hangs when the ranks' validation shards have different numbers of batches.
        evaluator=model if wrapped is not model else forward,
        amp_dtype=amp_dtype,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
    )


def _rank_loaders(loaders, config: TrainConfig, strategy: SingleProcess) -> tuple:
    """This rank's train and valid loaders (the whole loaders in a single process)."""
    train, valid = getattr(loaders, "train", None), getattr(loaders, "valid", None)
    if train is None:
        raise TypeError(
            "fit needs loaders with a .train DataLoader (see dlnb.data.loaders.make_loaders)."
        )
    return strategy.prepare_loaders(train, valid, config.seed)


def _default_callbacks(
    callbacks: Iterable[Callback], config: TrainConfig, strategy: SingleProcess
) -> list[Callback]:
    """The user's callbacks, plus a progress bar and live plot on rank 0 when asked for."""
    callbacks = list(callbacks)
    if strategy.is_main:
        if config.progress and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(ProgressBar())
        if config.live_plot and not any(isinstance(c, LivePlot) for c in callbacks):
            callbacks.append(LivePlot())
    return callbacks


def _make_state(
    model: nn.Module,
    config: TrainConfig,
    device: torch.device,
    train_loader,
    amp_dtype: torch.dtype | None,
) -> TrainState:
    """Seed, move the model to `device`, and build its optimizer, schedule, scaler, loss weights."""
    seed_everything(config.seed, config.deterministic)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    state = TrainState(
        model=model,
        optimizer=optimizer,
        config=config,
        device=device,
        history=History(),
        scaler=torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None,
        train_loader=train_loader,
        batches_per_epoch=batches_per_epoch(train_loader, config),
    )
    state.scheduler = make_scheduler(optimizer, config, state.steps_per_epoch)
    if config.class_weight is not None:
        labels = loader_labels(train_loader)
        state.loss_weight = class_weights(config.class_weight, labels).to(device)
    return state


def _resume(
    state: TrainState, loaders, callbacks: list[Callback], strategy: SingleProcess
) -> tuple[Path | None, dict | None]:
    """The run's checkpoint path and data fingerprint (None without a checkpoint_dir), after
    restoring `state` from the checkpoint a previous run of it left."""
    config = state.config
    if not config.checkpoint_dir:
        return None, None
    path = Path(config.checkpoint_dir) / "last.pt"
    fingerprint = data_fingerprint(loaders)
    if strategy.is_main:
        remove_orphans(path.parent)  # left by a run killed while writing a checkpoint
    if config.resume and path.exists():
        ckpt = load_checkpoint(path)  # every rank reads rank 0's file
        check_resumable(ckpt, config, fingerprint, path)
        restore(state, ckpt, callbacks)
    return path, fingerprint


def _run_epoch(run: Run) -> None:
    """One epoch: train, validate, record, let the callbacks react, write the checkpoint."""
    state = run.state
    state.epoch += 1
    _reseed_epoch(run)
    for cb in run.callbacks:
        cb.on_epoch_start(state)
    start = time.perf_counter()
    record = {"epoch": state.epoch, **train_epoch(run)}
    if run.valid_loader is not None:
        record.update(_validate(run, record["train_loss"]))
    record["lr"] = state.optimizer.param_groups[0]["lr"]
    record["seconds"] = time.perf_counter() - start
    state.history.records.append(record)
    state.epoch_metrics = record
    for cb in run.callbacks:
        cb.on_epoch_end(state)
    state.stop = run.strategy.any_rank(state.stop)  # one rank stopping stops them all
    _save_checkpoint(run)


def _reseed_epoch(run: Run) -> None:
    """Seed everything from (seed, epoch, rank) so an epoch replays identically after a resume."""
    config, epoch, loader = run.state.config, run.state.epoch, run.state.train_loader
    seed_everything(config.seed * 1000 + epoch + 7919 * run.strategy.rank, config.deterministic)
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(config.seed * 1000 + epoch)
    run.strategy.set_epoch(loader, epoch)


def _validate(run: Run, train_loss: float) -> dict[str, float]:
    """The epoch's validation metrics (summed over ranks), as `valid_*` keys."""
    state, config = run.state, run.state.config
    run.strategy.sync_buffers(state.model)
    sums = _evaluation_sums(run.evaluator, run.valid_loader, state.device, config, run.amp_dtype)
    valid = _evaluation_metrics(run.strategy.reduce_sum(sums), config.loss)
    if not math.isfinite(valid["loss"]):
        raise NonFiniteLossError(
            f"The validation loss became {valid['loss']} at epoch {state.epoch} while "
            f"the training loss was {train_loss:.4g}: the model gives NaN/Inf on "
            "some validation examples. Check the validation inputs for NaN/Inf "
            "(torch.isfinite(x).all()) and that they are preprocessed like the training ones."
        )
    return {f"valid_{k}": v for k, v in valid.items()}


def _save_checkpoint(run: Run) -> None:
    """Rank 0 writes the epoch's checkpoint (without the optimizer once the run has ended, unless
    `keep_optimizer`); every rank waits for it."""
    if run.checkpoint is None:
        return
    state = run.state
    if run.strategy.is_main:
        final = state.stop or state.epoch >= state.config.epochs
        keep = state.config.keep_optimizer or not final
        payload = checkpoint_payload(state, run.callbacks, run.fingerprint, keep)
        save_checkpoint(run.checkpoint, payload)
    run.strategy.barrier()


@torch.no_grad()
def _evaluation_sums(
    model: nn.Module,
    loader,
    device: torch.device,
    config: TrainConfig,
    amp_dtype: torch.dtype | None,
) -> dict[str, float]:
    """Summed loss, correct predictions and example count of `model` over `loader`."""
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    with eval_mode(model):
        for batch in loader:
            x, y = split_batch(batch)
            x, y = to_device(x, device, config.channels_last), to_device(y, device)
            with autocast(device, amp_dtype):
                logits = call_model(model, x)
            loss_sum += compute_loss(logits, y, config.loss).double() * len(y)
            if config.loss != "mse":
                correct += count_correct(logits, y, config.loss)
            seen += len(y)
    return {"loss": float(loss_sum), "correct": int(correct), "seen": seen}


def _evaluation_metrics(sums: dict[str, float], loss: str) -> dict:
    if sums["seen"] == 0:
        raise ValueError("evaluate got an empty loader: there is nothing to evaluate.")
    mean = sums["loss"] / sums["seen"]
    if loss == "mse":
        return {"loss": mean, "rmse": math.sqrt(mean)}
    return {"loss": mean, "accuracy": sums["correct"] / sums["seen"]}


def evaluate(
    model: nn.Module,
    loader,
    config: TrainConfig | None = None,
    *,
    device: torch.device | None = None,
) -> dict:
    """Mean loss and accuracy (classification) or RMSE (mse) of `model` over `loader`.

    The loss, autocast and memory format come from `config`; without one, cross-entropy in
    float32. `device` defaults to `resolve_device(config)`, or without a config the model's.
    """
    if device is None:
        device = resolve_device(config) if config is not None else model_device(model)
    config = config or TrainConfig(amp="off")
    sums = _evaluation_sums(model, loader, device, config, autocast_dtype(config.amp, device))
    return _evaluation_metrics(sums, config.loss)


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device | TrainConfig | None = None):
    """Logits and targets of `model` over `loader` (on `device`, a config's device, else the
    model's), as numpy arrays."""
    if isinstance(device, TrainConfig):  # predict(model, loader, config), like evaluate
        device = resolve_device(device)
    device = device or model_device(model)
    outputs, targets = [], []
    with eval_mode(model):
        for batch in loader:
            x, y = split_batch(batch)
            outputs.append(call_model(model, to_device(x, device)).float().cpu())
            targets.append(y.cpu() if isinstance(y, torch.Tensor) else torch.as_tensor(y))
    return torch.cat(outputs).numpy(), torch.cat(targets).numpy()
