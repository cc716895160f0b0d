"""Small, plain models for the curriculum (LeNet-5 and an MLP) and helpers for any model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) for 28x28 inputs, with ReLU, max-pooling and optional dropout."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of 28x28 images, `(batch, in_channels, 28, 28)`."""
        # Skipped while tracing (TorchScript export): a traced check is a constant that warns.
        if not torch.jit.is_tracing() and (
            x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (28, 28)
        ):
            raise ValueError(
                f"LeNet5 expects images of shape (batch, {self.in_channels}, 28, 28), got "
                f"{tuple(x.shape)}. Add a channel axis with x.unsqueeze(1) or resize to 28x28."
            )
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """A multi-layer perceptron: Linear-ReLU-Dropout blocks, then a linear output layer."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (256, 128),
        out_features: int = 10,
        dropout: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of a batch, each sample flattened to `in_features` values."""
        flat = x[0].numel() if x.ndim > 1 else x.numel()
        if flat != self.in_features:
            raise ValueError(
                f"MLP expects {self.in_features} features per sample, got input of shape "
                f"{tuple(x.shape)} ({flat} per sample)."
            )
        return self.net(x)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters in `model` (only those that require grad, if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode inside the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
