"""A source network pretrained once: LeNet-5 on all 60,000 MNIST digits, its weights cached.

`mnist_lenet()` trains it the first time (seconds to a minute on a CPU) and stores the weights in
`$DLNB_DATA/weights/`, under a name that hashes every setting that shapes them; later calls, and
later runs, load that file instead. `Headed` splits a network into a feature extractor
(`features`) and a linear `head`: the shape the methods of `dlnb.vision.transfer` work with
(a `TransferNet` has it too).
"""

from __future__ import annotations

import hashlib
import json
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


def lenet_headed(model: LeNet5) -> Headed:
    """LeNet-5 as `Headed`: its convolutions and first two dense layers (84 features), then its last layer."""
    last = model.classifier[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError(f"LeNet5's classifier should end with a Linear layer, not {last!r}.")
    body = nn.Sequential(model.features, *list(model.classifier)[:-1])
    return Headed(body, last)


def source_key(config: TrainConfig, batch_size: int, translate: int) -> str:
    """12 hex digits of the sha256 of every setting that shapes the source network's weights."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_HASHED}
    settings |= {"model": "LeNet5", "data": "mnist-train", "batch_size": batch_size}
    settings["translate"] = translate
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def source_path(
    config: TrainConfig = SOURCE_TRAINING, batch_size: int = 128, translate: int = 2
) -> Path:
    """Where `mnist_lenet` keeps the weights of these settings."""
    return data_dir() / "weights" / f"lenet5-mnist-{source_key(config, batch_size, translate)}.pt"


def mnist_lenet(
    config: TrainConfig = SOURCE_TRAINING,
    batch_size: int = 128,
    translate: int = 2,
    *,
    device: torch.device | str | None = None,
) -> tuple[LeNet5, dict]:
    """LeNet-5 trained on all of MNIST's training set (random shifts of up to `translate` pixels).

    Returns the model (on the CPU, in eval mode) and what is known about it: `test_accuracy` on
    MNIST's 10,000 test digits, `train_seconds`, `path` of the weights file and `cached` (whether
    this call loaded them). The first call trains and writes the file atomically; it is read back
    with `torch.load(..., weights_only=True)`, which runs no code from the file.
    """
    path = source_path(config, batch_size, translate)
    model = LeNet5()
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["weights"])
        return model.eval(), {**saved["about"], "path": str(path), "cached": True}
    if device is not None:
        config = replace(config, device=str(device))
    run_on = resolve_device(config)
    x, y = mnist_tensors("train")
    x_test, y_test = mnist_tensors("test")
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
    model = LeNet5()
    with Timer(run_on) as timer:
        fit(model, loaders, config, device=run_on)
    about = {
        "test_accuracy": evaluate(model, loaders.test, device=run_on)["accuracy"],
        "train_seconds": timer.seconds,
        "settings": source_key(config, batch_size, translate),
    }
    model = model.cpu().eval()
    with atomic_write(path) as f:
        torch.save({"weights": model.state_dict(), "about": about}, f)
    return model, {**about, "path": str(path), "cached": False}
