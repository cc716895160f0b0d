"""A source network pretrained once: LeNet-5 on MNIST's training digits (all ten classes, or only
some of them), its weights cached.

`mnist_lenet(digits=(0, 1, 2, 3, 4))` trains it the first time (seconds on a CPU) and stores the
weights in `$DLNB_DATA/weights/`, under a name that hashes every setting that shapes them (the
digits included); later calls, and later runs, load that file instead. `Headed` splits a network
into a feature extractor (`features`) and a linear `head`: the shape the methods of
`dlnb.vision.transfer` work with (a `TransferNet` has it too). `lenet_headed(model, cut=...)` cuts
LeNet-5 after its convolutions or after either hidden dense layer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from dlnb.data.loaders import make_loaders
from dlnb.data.registry import data_dir
from dlnb.models import LeNet5
from dlnb.runtime import Timer, atomic_write
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device
from dlnb.vision.datasets import mnist_tensors

#: How the source network is trained: 2 epochs of AdamW, one-cycle schedule, batches of 128.
SOURCE_TRAINING = TrainConfig(
    epochs=2, lr=3e-3, scheduler="onecycle", weight_decay=0.01, progress=False
)
#: Settings that do not change the learned weights (where and how visibly a run happens).
_NOT_HASHED = ("device", "progress", "live_plot", "checkpoint_dir", "resume")
#: Where LeNet-5 can be cut into features and a head: how many of its classifier's layers the
#: body keeps (Flatten, Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear) and their width.
LENET_CUTS = {"conv": (1, 400), "fc1": (4, 120), "fc2": (7, 84)}
ALL_DIGITS = tuple(range(10))


class Headed(nn.Module):
    """A network as a feature extractor `body` (images -> (N, F) features) and a linear `head`."""

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body = body
        self.head = head

    @property
    def num_features(self) -> int:
        """Width of the features that feed the head."""
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's output (N, num_features)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def lenet_headed(model: LeNet5, cut: str = "fc2") -> Headed:
    """LeNet-5 as `Headed`, cut where `cut` says (a key of `LENET_CUTS`).

    "fc2" (the default): its convolutions and both hidden dense layers (84 features), then its own
    last layer as the head. "fc1": up to the first dense layer (120 features); "conv": its
    convolutions only (400 features). The layers are the model's own, not copies; below "fc2" the
    head is a new linear layer with as many outputs as the model has classes.
    """
    if cut not in LENET_CUTS:
        raise ValueError(f"Unknown cut {cut!r}; choose from {list(LENET_CUTS)}.")
    last = model.classifier[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError(f"LeNet5's classifier should end with a Linear layer, not {last!r}.")
    keep, width = LENET_CUTS[cut]
    body = nn.Sequential(model.features, *list(model.classifier)[:keep])
    head = last if cut == "fc2" else nn.Linear(width, last.out_features)
    return Headed(body, head)


def source_key(
    config: TrainConfig, batch_size: int, translate: int, digits: Sequence[int] = ALL_DIGITS
) -> str:
    """12 hex digits of the sha256 of every setting that shapes the source network's weights."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_HASHED}
    settings |= {"model": "LeNet5", "data": "mnist-train", "batch_size": batch_size}
    settings["translate"] = translate
    if tuple(digits) != ALL_DIGITS:  # all ten digits keep the key they had before `digits` existed
        settings["digits"] = list(digits)
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def source_path(
    config: TrainConfig = SOURCE_TRAINING,
    batch_size: int = 128,
    translate: int = 2,
    digits: Sequence[int] = ALL_DIGITS,
) -> Path:
    """Where `mnist_lenet` keeps the weights of these settings."""
    key = source_key(config, batch_size, translate, digits)
    return data_dir() / "weights" / f"lenet5-mnist-{key}.pt"


def _check_digits(digits: Sequence[int]) -> tuple[int, ...]:
    chosen = tuple(int(d) for d in digits)
    if len(chosen) < 2 or len(set(chosen)) != len(chosen) or not set(chosen) <= set(ALL_DIGITS):
        raise ValueError(f"digits must be at least two different digits 0-9, got {digits!r}.")
    return chosen


def _digit_tensors(split: str, digits: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's `split` restricted to `digits`, labelled by their position in `digits`."""
    x, y = mnist_tensors(split)
    if digits == ALL_DIGITS:
        return x, y
    keep = torch.isin(y, torch.tensor(digits))
    lookup = torch.full((10,), -1, dtype=torch.long)
    lookup[list(digits)] = torch.arange(len(digits))
    return x[keep], lookup[y[keep]]


def mnist_lenet(
    config: TrainConfig = SOURCE_TRAINING,
    batch_size: int = 128,
    translate: int = 2,
    *,
    digits: Sequence[int] = ALL_DIGITS,
    device: torch.device | str | None = None,
) -> tuple[LeNet5, dict]:
    """LeNet-5 trained on MNIST's training digits of `digits` only (all ten by default), with
    random shifts of up to `translate` pixels; output i is the class `digits[i]`.

    Returns the model (on the CPU, in eval mode) and what is known about it: `test_accuracy` on
    MNIST's test digits of those classes, `digits`, `train_images`, `train_seconds`, `path` of the
    weights file and `cached` (whether this call loaded them). The first call trains and writes
    the file atomically; it is read back with `torch.load(..., weights_only=True)`, which runs no
    code from the file.
    """
    digits = _check_digits(digits)
    path = source_path(config, batch_size, translate, digits)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = LeNet5(num_classes=len(digits))
        model.load_state_dict(saved["weights"])
        return model.eval(), {**saved["about"], "path": str(path), "cached": True}
    if device is not None:
        config = replace(config, device=str(device))
    model, about = _train_source(config, batch_size, translate, digits)
    with atomic_write(path) as f:
        torch.save({"weights": model.state_dict(), "about": about}, f)
    return model, {**about, "path": str(path), "cached": False}


def _train_source(
    config: TrainConfig, batch_size: int, translate: int, digits: tuple[int, ...]
) -> tuple[LeNet5, dict]:
    """Train LeNet-5 on MNIST's `digits`; the model (CPU, eval mode) and what is known about it."""
    run_on = resolve_device(config)
    (x, y), (x_test, y_test) = _digit_tensors("train", digits), _digit_tensors("test", digits)
    loaders = make_loaders(
        x,
        y,
        x_test,
        y_test,
        batch_size=batch_size,
        valid_fraction=0.0,
        seed=config.seed,
        device=run_on,
        translate=translate,
    )
    torch.manual_seed(config.seed)
    model = LeNet5(num_classes=len(digits))
    with Timer(run_on) as timer:
        fit(model, loaders, config, device=run_on)
    about = {
        "test_accuracy": evaluate(model, loaders.test, device=run_on)["accuracy"],
        "digits": list(digits),
        "train_images": len(y),
        "train_seconds": timer.seconds,
        "settings": source_key(config, batch_size, translate, digits),
    }
    return model.cpu().eval(), about
