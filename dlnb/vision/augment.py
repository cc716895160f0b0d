"""Augmentation of whole training batches: per-image random affine maps, shifts and flips.

Each image of a batch gets its own random transformation in one vectorised call (no Python loop
over images), so small networks on a CPU do not wait for their data. `TrainAugment` wraps such a
function as a module that acts only in training mode: put it in front of a network
(`nn.Sequential(augment, net)`) and `fit` trains on fresh variants of every image while
`evaluate` sees the images unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from dlnb.data.resident import random_flip, random_translate
from dlnb.vision.datasets import MNIST_MEAN, MNIST_STD

#: A normalised MNIST-style image's black: the value of a 0 pixel after `(x - mean) / std`.
MNIST_BLACK = -MNIST_MEAN / MNIST_STD


def random_affine(
    x: torch.Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: float = 0.1,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate each image of an (N, C, H, W) batch by up to `degrees`, shift it by up to `translate`
    of its size and zoom it by up to `scale` (1 +- scale), each drawn uniformly per image.

    Pixels that come from outside the image take the value `fill` (the background's).
    """
    if x.ndim != 4:
        raise ValueError(f"random_affine expects a batch (N, C, H, W), got shape {tuple(x.shape)}.")
    n = len(x)

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1), on x's device (as `generator` must be)
        return torch.rand(*shape, generator=generator, device=x.device) * 2 - 1

    angle = uniform(n) * math.radians(degrees)
    zoom = 1 + uniform(n) * scale
    shift = uniform(n, 2) * 2 * translate  # affine_grid's coordinates run from -1 to 1
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, align_corners=False, padding_mode="zeros") + fill


class TrainAugment(nn.Module):
    """Apply `transform` to the batch in training mode; pass it through unchanged in eval mode."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor], name: str = ""):
        super().__init__()
        self.transform = transform
        self.name = name or getattr(transform, "__name__", type(transform).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x) if self.training else x

    def extra_repr(self) -> str:
        return self.name


def digit_augment(
    degrees: float = 10.0, translate: float = 0.1, scale: float = 0.1, fill: float = MNIST_BLACK
) -> TrainAugment:
    """Small random rotations, shifts and zooms of normalised digits; no flips (a mirrored 2 is not a 2)."""
    transform = partial(random_affine, degrees=degrees, translate=translate, scale=scale, fill=fill)
    return TrainAugment(
        transform, f"rotate <= {degrees:g} deg, shift <= {translate:.0%}, zoom 1 +- {scale:g}"
    )


def _shift_and_flip(x: torch.Tensor, shift: int) -> torch.Tensor:
    return random_flip(random_translate(x, shift))


def photo_augment(shift: int = 2) -> TrainAugment:
    """Random shifts of up to `shift` pixels (reflected border) and left-right flips of photographs."""
    return TrainAugment(partial(_shift_and_flip, shift=shift), f"shift <= {shift} px, flip")
