"""One batch of the training loop: moving it to the device, calling the model, the loss, and
tallying the epoch's losses (checked for NaN/Inf and explosions)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlnb.train.config import NonFiniteLossError, TrainState


class LossExplodedError(NonFiniteLossError):
    """The training loss stayed orders of magnitude above its starting value: training diverged."""


@dataclass
class ExplosionGuard:
    """Trips when most recent batch losses are above `factor` x max(the run's first loss, 1).

    The first loss is the untrained model's (its optimizer has not stepped yet); a run that learns
    never goes back 10^4 times above it, and the floor of 1 keeps a near-zero start (a fine-tuned
    model) from making noise look like an explosion. At least half of the last `window` batches
    (or of an epoch, if shorter) must be above it, so a few bad batches do not stop a run, while a
    diverged one trips even though some of its batches, predicted right with huge logits, cost 0.
    """

    factor: float = 1e4
    window: int = 20
    start: float | None = None
    recent: list[float] = field(default_factory=list)

    @property
    def threshold(self) -> float:
        """The loss above which a batch counts as exploded."""
        return self.factor * max(self.start if self.start is not None else 1.0, 1.0)

    @property
    def exploded(self) -> int:
        """How many of the recent batches were above the threshold."""
        return sum(loss > self.threshold for loss in self.recent)

    def update(self, loss: float, batches_per_epoch: int) -> bool:
        """Add one finite batch loss; True once the loss has exploded."""
        if self.start is None:
            self.start = loss
            return False
        window = min(self.window, max(batches_per_epoch, 1))
        self.recent = [*self.recent, loss][-window:]
        return len(self.recent) == window and 2 * self.exploded >= window


@dataclass
class LossTally:
    """An epoch's batch losses: read from the device once every `sync_every` batches (one sync for
    all of them), each checked for NaN/Inf and for an explosion, then summed."""

    guard: ExplosionGuard
    sync_every: int = 1
    pending: list[tuple[torch.Tensor, int]] = field(default_factory=list)
    loss_sum: float = 0.0
    seen: int = 0

    def add(self, loss: torch.Tensor, size: int, state: TrainState) -> None:
        """Keep a batch's mean loss (over `size` examples); check the pending ones when due."""
        self.pending.append((loss.detach(), size))
        if len(self.pending) >= self.sync_every:
            self.flush(state)

    def flush(self, state: TrainState) -> None:
        """Read the pending losses in one device sync, check each, and add them to the sums."""
        if not self.pending:
            return
        tensors = [loss for loss, _ in self.pending]
        losses = torch.stack(tensors).tolist() if len(tensors) > 1 else [tensors[0].item()]
        first = state.batch - len(self.pending) + 1  # the batch number of the first pending loss
        for j, (value, (_, size)) in enumerate(zip(losses, self.pending, strict=True)):
            _check_batch_loss(value, first + j, state, self.guard)
            self.loss_sum += value * size
            self.seen += size
        state.last_loss = losses[-1]
        self.pending = []


def _check_batch_loss(value: float, batch: int, state: TrainState, guard: ExplosionGuard) -> None:
    """Stop training, naming the epoch and batch, when a batch loss is NaN/Inf or has exploded."""
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"The training loss became {value} at epoch {state.epoch}, batch {batch} (optimizer "
            f"step {state.step}). Lower the learning rate, add grad_clip, check the inputs for "
            "NaN/Inf, or use amp='bf16' instead of fp16."
        )
    if guard.update(value, state.batches_per_epoch):
        raise LossExplodedError(
            f"The training loss exploded (up to {max(guard.recent):.3g}) by epoch {state.epoch}, "
            f"batch {batch}: {guard.exploded} of the last {len(guard.recent)} batches were over "
            f"{guard.factor:g} x its starting value {guard.start:.3g}. The learning rate "
            f"lr={state.config.lr:g} is too high: lower it (dlnb.train.lr_finder finds one) or "
            "add grad_clip."
        )


def to_device(obj, device: torch.device, channels_last: bool = False):
    """Move a Tensor, or the Tensors in a dict/tuple/list, to `device` (4-D floats to channels_last)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.to(device, non_blocking=True)
        if channels_last and obj.ndim == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, dict):
        return {k: to_device(v, device, channels_last) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device, channels_last) for v in obj)
    return obj


def split_batch(batch) -> tuple:
    """A batch's `(x, y)`, or a clear error naming what the batch was instead."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(
        f"A batch must be a pair (x, y); got {type(batch).__name__}"
        f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}. "
        "Make the dataset or collate_fn return (inputs, targets)."
    )


def call_model(model: nn.Module, x) -> torch.Tensor:
    """`model(x)`, `model(*x)` or `model(**x)`, and the logits of what it returns."""
    if isinstance(x, dict):
        out = model(**x)
    elif isinstance(x, (tuple, list)):
        out = model(*x)
    else:
        out = model(x)
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    return out


def compute_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    label_smoothing: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss named `loss` between model outputs and targets (per-class `weight`s, classification),
    with a clear shape error."""
    if loss == "cross_entropy":
        if logits.ndim != 2 or y.ndim != 1 or len(logits) != len(y):
            raise ValueError(
                f"cross_entropy needs logits (batch, classes) and integer targets (batch,); got "
                f"{tuple(logits.shape)} and {tuple(y.shape)}."
            )
        return F.cross_entropy(
            logits.float(), y.long(), weight=weight, label_smoothing=label_smoothing
        )
    out = logits.float().reshape(y.shape) if logits.numel() == y.numel() else None
    if out is None:
        raise ValueError(
            f"{loss} needs one output per target; got {tuple(logits.shape)} and {tuple(y.shape)}."
        )
    if loss == "mse":
        return F.mse_loss(out, y.float())
    per_example = None if weight is None else weight[y.long()]
    return F.binary_cross_entropy_with_logits(out, y.float(), weight=per_example)


def count_correct(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Number of correct predictions (argmax for cross_entropy, logit > 0 for bce), as a Tensor."""
    if loss == "cross_entropy":
        return (logits.argmax(dim=1) == y).sum()
    return ((logits.reshape(y.shape) > 0).long() == y.long()).sum()


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
) -> None:
    """One optimizer step after `backward`: unscale (fp16), clip, step, update the scaler, zero grads."""
    if grad_clip is not None:
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
