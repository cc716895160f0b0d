"""Training: the config, the loop, callbacks, history, the learning-rate finder, measurements of
what a technique buys, saving, and distributed training (`distributed`, `launch`).

What notebooks and users call, and the types they receive or subclass. The parts `fit` is made of
(one step, checkpoints, precision, loss weights) and what the areas build on are imported from
their modules: `dlnb.train.step`, `dlnb.train.checkpoint`, `dlnb.train.saving`...
"""

from __future__ import annotations

from dlnb.train import distributed, launch, timing
from dlnb.train.callbacks import Callback, EarlyStopping, LivePlot, ProgressBar
from dlnb.train.config import NonFiniteLossError, TrainConfig, TrainState
from dlnb.train.history import History
from dlnb.train.loop import evaluate, fit, predict
from dlnb.train.lr_finder import LRSweep, lr_find, plot_lr_find
from dlnb.train.measure import (
    compare_techniques,
    describe_speedups,
    plot_speedups,
    skipped_techniques,
    speed_scope,
    summarise_speedups,
)
from dlnb.train.memory import describe_batch_search, find_batch_size
from dlnb.train.profile import StepProfile, describe_profile, profile_steps
from dlnb.train.report import Report, classification_report
from dlnb.train.saving import save_model

__all__ = [
    "NonFiniteLossError",
    "TrainConfig",
    "TrainState",
    "fit",
    "evaluate",
    "predict",
    "Callback",
    "EarlyStopping",
    "ProgressBar",
    "LivePlot",
    "History",
    "find_batch_size",
    "describe_batch_search",
    "LRSweep",
    "lr_find",
    "plot_lr_find",
    "compare_techniques",
    "summarise_speedups",
    "describe_speedups",
    "skipped_techniques",
    "speed_scope",
    "plot_speedups",
    "Report",
    "classification_report",
    "save_model",
    "StepProfile",
    "profile_steps",
    "describe_profile",
    "distributed",
    "launch",
    "timing",
]
