"""Training: the config, the loop, one step, callbacks, history, checkpoints, precision, memory, DDP."""

from __future__ import annotations

from dlnb.train import distributed, launch
from dlnb.train.callbacks import Callback, EarlyStopping, LivePlot, ProgressBar
from dlnb.train.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    restore,
    save_checkpoint,
    unwrap_model,
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
from dlnb.train.loop import evaluate, fit, predict, resolve_device
from dlnb.train.lr_finder import LRSweep, lr_find, plot_lr_find
from dlnb.train.measure import (
    compare_techniques,
    describe_speedups,
    measure_fit,
    plot_speedups,
    rotated_orders,
    speed_verdict,
    summarise_speedups,
)
from dlnb.train.memory import find_batch_size, is_out_of_memory
from dlnb.train.precision import autocast, autocast_dtype
from dlnb.train.profile import StepProfile, profile_steps
from dlnb.train.report import Report, class_weights, classification_report, report_from_probs
from dlnb.train.saving import load_model_files, load_weights_into, save_model
from dlnb.train.step import (
    call_model,
    compute_loss,
    count_correct,
    optimizer_step,
    split_batch,
    to_device,
)

__all__ = [
    "NonFiniteLossError",
    "TrainConfig",
    "TrainState",
    "make_optimizer",
    "make_scheduler",
    "batches_per_epoch",
    "fit",
    "evaluate",
    "predict",
    "resolve_device",
    "to_device",
    "split_batch",
    "call_model",
    "compute_loss",
    "count_correct",
    "optimizer_step",
    "Callback",
    "EarlyStopping",
    "ProgressBar",
    "LivePlot",
    "History",
    "unwrap_model",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_payload",
    "restore",
    "autocast_dtype",
    "autocast",
    "is_out_of_memory",
    "find_batch_size",
    "measure_fit",
    "LRSweep",
    "lr_find",
    "plot_lr_find",
    "rotated_orders",
    "compare_techniques",
    "speed_verdict",
    "summarise_speedups",
    "describe_speedups",
    "plot_speedups",
    "Report",
    "classification_report",
    "report_from_probs",
    "class_weights",
    "save_model",
    "load_model_files",
    "load_weights_into",
    "StepProfile",
    "profile_steps",
    "distributed",
    "launch",
]
