"""One training loop for every model of the curriculum: `fit`, `evaluate`, `predict`.

A batch is `(x, y)`; `x` is a Tensor (`model(x)`), a tuple of Tensors (`model(*x)`) or a dict of
Tensors (`model(**x)`, e.g. a Hugging Face model, whose `.logits` are used). dlnb computes the
loss from the logits, so the same loop serves CNNs, tabular models and transformers.

The same `fit` runs unchanged under `torchrun`: when a process group is up (see
`dlnb.train.distributed.init_distributed`) the model is wrapped in DistributedDataParallel, each rank
trains on its shard of the data (the loader's batch size is per rank), metrics are summed over
ranks, and only rank 0 prints progress and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from dlnb.models import eval_mode
from dlnb.runtime import model_device, pick_device, seed_everything
from dlnb.train import distributed as dist
from dlnb.train.callbacks import Callback, EarlyStopping, LivePlot, ProgressBar
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
from dlnb.train.history import History
from dlnb.train.precision import autocast, autocast_dtype
from dlnb.train.report import class_weights, loader_labels
from dlnb.train.step import (
    ExplosionGuard,
    LossExplodedError,
    call_model,
    compute_loss,
    count_correct,
    optimizer_step,
    split_batch,
    to_device,
)

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "LivePlot",
    "ProgressBar",
    "compute_loss",
    "evaluate",
    "fit",
    "load_checkpoint",
    "predict",
    "resolve_device",
    "save_checkpoint",
]


def resolve_device(config: TrainConfig) -> torch.device:
    """The device a run of `config` uses in this process (this rank's GPU under torchrun)."""
    return dist.rank_device(pick_device(config.device))


# --- the loop ------------------------------------------------------------------------------------


def _reseed_epoch(loader, config: TrainConfig, epoch: int) -> None:
    """Seed everything from (seed, epoch, rank) so an epoch replays identically after a resume."""
    seed_everything(config.seed * 1000 + epoch + 7919 * dist.rank(), config.deterministic)
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(config.seed * 1000 + epoch)
    dist.set_epoch(loader, epoch)


def _rank_loaders(loaders, config: TrainConfig) -> tuple:
    """This rank's train and valid loaders (the whole loaders in a single process)."""
    train, valid = getattr(loaders, "train", None), getattr(loaders, "valid", None)
    if train is None:
        raise TypeError(
            "fit needs loaders with a .train DataLoader (see dlnb.data.loaders.make_loaders)."
        )
    if dist.is_distributed():
        train = dist.shard_loader(train, train=True, seed=config.seed)
        valid = dist.shard_loader(valid, train=False) if valid is not None else None
    return train, valid


def _default_callbacks(callbacks: Iterable[Callback], config: TrainConfig) -> list[Callback]:
    """The user's callbacks, plus a progress bar and live plot on rank 0 when asked for."""
    callbacks = list(callbacks)
    if dist.is_main_process():
        if config.progress and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(ProgressBar())
        if config.live_plot and not any(isinstance(c, LivePlot) for c in callbacks):
            callbacks.append(LivePlot())
    return callbacks


def fit(
    model: nn.Module,
    loaders,
    config: TrainConfig | None = None,
    callbacks: Iterable[Callback] = (),
    *,
    device: torch.device | None = None,
) -> History:
    """Train `model` on `loaders.train`, validating on `loaders.valid` after each epoch.

    `device` is the run's resolved device; by default `resolve_device(config)`.
    """
    config = config or TrainConfig()
    device = device or resolve_device(config)
    train_loader, valid_loader = _rank_loaders(loaders, config)
    callbacks = _default_callbacks(callbacks, config)

    seed_everything(config.seed, config.deterministic)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    amp_dtype = autocast_dtype(config.amp, device)
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
    ckpt_path = Path(config.checkpoint_dir) / "last.pt" if config.checkpoint_dir else None
    fingerprint = data_fingerprint(loaders) if ckpt_path is not None else None
    if ckpt_path is not None and dist.is_main_process():
        remove_orphans(ckpt_path.parent)  # left by a run killed while writing a checkpoint
    if ckpt_path is not None and config.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)  # every rank reads rank 0's file
        check_resumable(ckpt, config, fingerprint or {}, ckpt_path)
        restore(state, ckpt, callbacks)
    ddp_model = dist.wrap_ddp(model, device) if dist.is_distributed() else None
    train_model = ddp_model or model
    # torch.compile of a Module is an OptimizedModule, a Module (its stubs say only "callable").
    forward_model = cast(nn.Module, torch.compile(train_model)) if config.compile else train_model
    # Under DDP, evaluate the plain module: DDP's forward would sync buffers across ranks,
    # which hangs when the ranks' validation shards have different numbers of batches.
    eval_model = model if ddp_model is not None else forward_model
    if dist.is_distributed():
        dist.log(
            f"DDP: {dist.world_size()} processes, {getattr(train_loader, 'batch_size', '?')} "
            f"examples per rank per batch, {device.type} devices"
        )

    guard = ExplosionGuard()
    for cb in callbacks:
        cb.on_fit_start(state)
    while state.epoch < config.epochs and not state.stop:
        state.epoch += 1
        _reseed_epoch(train_loader, config, state.epoch)
        for cb in callbacks:
            cb.on_epoch_start(state)
        start = time.perf_counter()
        no_sync = ddp_model.no_sync if ddp_model is not None else contextlib.nullcontext
        record = {
            "epoch": state.epoch,
            **_train_epoch(forward_model, state, amp_dtype, callbacks, no_sync, guard),
        }
        if valid_loader is not None:
            dist.sync_buffers(model)
            sums = _evaluation_sums(eval_model, valid_loader, device, config, amp_dtype)
            valid = _evaluation_metrics(dist.all_reduce_sum(sums), config.loss)
            if not math.isfinite(valid["loss"]):
                raise NonFiniteLossError(
                    f"The validation loss became {valid['loss']} at epoch {state.epoch} while "
                    f"the training loss was {record['train_loss']:.4g}: the model gives NaN/Inf on "
                    "some validation examples. Check the validation inputs for NaN/Inf "
                    "(torch.isfinite(x).all()) and that they are preprocessed like the training ones."
                )
            record.update({f"valid_{k}": v for k, v in valid.items()})
        record["lr"] = optimizer.param_groups[0]["lr"]
        record["seconds"] = time.perf_counter() - start
        state.history.records.append(record)
        state.epoch_metrics = record
        for cb in callbacks:
            cb.on_epoch_end(state)
        if dist.is_distributed():  # one rank's callback stopping the run stops them all
            state.stop = dist.all_reduce_sum({"stop": float(state.stop)})["stop"] > 0
        if ckpt_path is not None:
            if dist.is_main_process():
                final = state.stop or state.epoch >= config.epochs  # no optimizer once it ended
                keep = config.keep_optimizer or not final
                save_checkpoint(ckpt_path, checkpoint_payload(state, callbacks, fingerprint, keep))
            dist.barrier()
    for cb in callbacks:
        cb.on_fit_end(state)
    state.history.stop_reason = state.stop_reason
    return state.history


def _train_epoch(
    model: nn.Module,
    state: TrainState,
    amp_dtype: torch.dtype | None,
    callbacks: Sequence[Callback],
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]],
    guard: ExplosionGuard,
) -> dict:
    """One epoch of training steps; the epoch's mean loss (and accuracy when classifying)."""
    config, device, optimizer = state.config, state.device, state.optimizer
    model.train()
    sync_every = 1 if device.type == "cpu" else 32
    pending: list[tuple[torch.Tensor, int]] = []
    loss_sum, seen, correct = 0.0, 0, torch.zeros((), device=device, dtype=torch.long)
    classify = config.loss in ("cross_entropy", "bce")
    k, n_batches = config.grad_accum, state.batches_per_epoch
    optimizer.zero_grad(set_to_none=True)

    def flush() -> None:  # one device sync for the pending losses, then plain Python
        nonlocal loss_sum, seen, pending
        if not pending:
            return
        losses = (
            torch.stack([p[0] for p in pending]).tolist()
            if len(pending) > 1
            else [pending[0][0].item()]
        )
        for j, (value, (_, size)) in enumerate(zip(losses, pending, strict=True)):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"The training loss became {value} at epoch {state.epoch}, batch "
                    f"{state.batch - len(pending) + j + 1} (optimizer step {state.step}). Lower "
                    "the learning rate, add grad_clip, check the inputs for NaN/Inf, or use "
                    "amp='bf16' instead of fp16."
                )
            if guard.update(value, n_batches):
                raise LossExplodedError(
                    f"The training loss exploded (up to {max(guard.recent):.3g}) by epoch "
                    f"{state.epoch}, batch {state.batch - len(pending) + j + 1}: "
                    f"{guard.exploded} of the last "
                    f"{len(guard.recent)} batches were over {guard.factor:g} x its starting value "
                    f"{guard.start:.3g}. The learning rate "
                    f"lr={config.lr:g} is too high: lower it (dlnb.train.lr_finder finds one) or "
                    "add grad_clip."
                )
            loss_sum += value * size
            seen += size
        state.last_loss = losses[-1]
        pending = []

    for i, batch in enumerate(state.train_loader):
        if i >= n_batches:
            break
        state.batch = i + 1
        x, y = split_batch(batch)
        x, y = to_device(x, device, config.channels_last), to_device(y, device)
        group_end = min((i // k + 1) * k, n_batches)  # the batch after which the optimizer steps
        group_size = group_end - (i // k) * k  # the last group of an epoch may be shorter
        # Under DDP, gradients are averaged across ranks only on the last micro-batch of a group.
        with no_sync() if i + 1 < group_end else contextlib.nullcontext():
            with autocast(device, amp_dtype):
                logits = call_model(model, x)
                loss = compute_loss(
                    logits, y, config.loss, config.label_smoothing, state.loss_weight
                )
            scaled = loss / group_size if group_size > 1 else loss
            (state.scaler.scale(scaled) if state.scaler else scaled).backward()
        if i + 1 == group_end:
            _optimizer_step(state)
        pending.append((loss.detach(), len(y)))
        if classify:
            correct += count_correct(logits.detach(), y, config.loss)
        if len(pending) >= sync_every:
            flush()
        for cb in callbacks:
            cb.on_batch_end(state)
    flush()
    totals = dist.all_reduce_sum({"loss": loss_sum, "seen": seen, "correct": int(correct)})
    seen_all = max(totals["seen"], 1)
    metrics = {"train_loss": totals["loss"] / seen_all}
    if classify:
        metrics["train_accuracy"] = totals["correct"] / seen_all
    return metrics


def _optimizer_step(state: TrainState) -> None:
    optimizer_step(state.model, state.optimizer, state.scaler, state.config.grad_clip)
    if state.scheduler is not None:
        state.scheduler.step()
    state.step += 1


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
