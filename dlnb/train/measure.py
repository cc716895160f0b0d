"""Measure what a training technique buys: throughput, peak memory and accuracy of a `fit` run."""

from __future__ import annotations

import torch
from torch import nn

from dlnb.runtime import Timer, memory_stats
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device


def measure_fit(model: nn.Module, loaders, config: TrainConfig) -> dict:
    """Train `model` with `fit` and report images/s (training and validation included), peak
    device memory (RSS on a CPU), the last validation accuracy and, with `loaders.test`, the
    test accuracy."""
    device = resolve_device(config)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with Timer(device) as timer:
        history = fit(model, loaders, config, device=device)
    memory = memory_stats(device)
    images = len(loaders.train.dataset) * len(history)
    result = {
        "images_per_s": images / timer.seconds,
        "seconds": timer.seconds,
        "memory_mib": memory.get("cuda_peak_mib", memory["rss_mib"]),
        "valid_accuracy": history.records[-1].get("valid_accuracy"),
    }
    if getattr(loaders, "test", None) is not None:
        result["test_accuracy"] = evaluate(model, loaders.test, config, device=device)["accuracy"]
    return result
