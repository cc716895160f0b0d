"""What a `fit` run is told (`TrainConfig`), what it tracks (`TrainState`), and what it builds from
the config: the optimizer, the learning-rate schedule and the length of an epoch."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from dlnb.train.history import History

__all__ = [
    "Loss",
    "NonFiniteLossError",
    "Optimizer",
    "Precision",
    "Scheduler",
    "TrainConfig",
    "TrainState",
    "batches_per_epoch",
    "make_optimizer",
    "make_scheduler",
]

Optimizer = Literal["adamw", "sgd"]
Scheduler = Literal["onecycle", "cosine"]
Loss = Literal["cross_entropy", "mse", "bce"]
#: "auto": bf16/fp16 on CUDA, off elsewhere; "bf16" runs on CPUs too; "fp16" needs CUDA.
Precision = Literal["auto", "off", "bf16", "fp16"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything `fit` needs to know besides the model and the data."""

    epochs: int = 3
    lr: float = 1e-3
    optimizer: Optimizer = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Scheduler | None = None
    loss: Loss = "cross_entropy"
    label_smoothing: float = 0.0
    class_weight: Literal["balanced"] | list[float] | None = None  # or one weight per class
    grad_clip: float | None = None
    grad_accum: int = 1
    amp: Precision = "auto"
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"  # "auto", or a torch device: "cpu", "cuda", "cuda:1", "mps"
    seed: int = 0
    deterministic: bool = False
    checkpoint_dir: str | None = None
    resume: bool = True
    keep_optimizer: bool = False  # keep the optimizer state in the final checkpoint (to extend it)
    progress: bool = True
    live_plot: bool = False
    max_steps_per_epoch: int | None = None
    param_groups: Callable[[nn.Module], list[dict]] | None = None

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, get_args(Optimizer))
        _check_choice("scheduler", self.scheduler, (None, *get_args(Scheduler)))
        _check_choice("loss", self.loss, get_args(Loss))
        _check_choice("amp", self.amp, get_args(Precision))
        if self.epochs < 1 or self.grad_accum < 1:
            raise ValueError("TrainConfig.epochs and TrainConfig.grad_accum must be at least 1.")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}."
            )
        if self.class_weight is not None and (
            self.loss == "mse"
            or (isinstance(self.class_weight, str) and self.class_weight != "balanced")
        ):
            raise ValueError(
                f"TrainConfig.class_weight={self.class_weight!r} needs a classification loss and "
                "'balanced' or a list of one weight per class."
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(
                f"TrainConfig.grad_clip must be positive or None, got {self.grad_clip}."
            )
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(
                "TrainConfig.max_steps_per_epoch must be at least 1 (or None for all)."
            )

    def to_dict(self) -> dict:
        """The config as plain values (callables left out), for checkpoints and reports."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "param_groups"}


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a ValueError naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"TrainConfig.{name}={value!r} is not one of {allowed}.")


@dataclass
class TrainState:
    """What callbacks can see (and `stop`) while `fit` runs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    history: History
    scheduler: LRScheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    train_loader: Iterable[Any] = ()
    batches_per_epoch: int = 0
    epoch: int = 0
    step: int = 0
    batch: int = 0
    last_loss: float = math.nan
    stop: bool = False
    stop_reason: str = ""
    epoch_metrics: dict = field(default_factory=dict)
    loss_weight: torch.Tensor | None = None  # per-class weights of the training loss

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (the last accumulation group of an epoch may be shorter)."""
        return math.ceil(self.batches_per_epoch / self.config.grad_accum)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over `config.param_groups(model)`, else over the trainable parameters."""
    params = (
        config.param_groups(model)
        if config.param_groups
        else [p for p in model.parameters() if p.requires_grad]
    )
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def batches_per_epoch(loader: Sized, config: TrainConfig) -> int:
    """Training batches per epoch: all of `loader`, or `max_steps_per_epoch` optimizer steps' worth."""
    batches = len(loader)
    if config.max_steps_per_epoch:
        batches = min(batches, config.max_steps_per_epoch * config.grad_accum)
    return batches


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> LRScheduler | None:
    """The schedule `config.scheduler` names over the whole run, stepped once per optimizer step."""
    total = max(1, steps_per_epoch * config.epochs)
    if config.scheduler == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return None
