"""dlnb.vision.augment: per-image random affine maps of a batch, and train-only augmentation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlnb.vision import augment as va


def dot_images(n: int = 6) -> torch.Tensor:
    """`n` black 28x28 images (MNIST's normalised black) with one bright square in the middle."""
    x = torch.full((n, 1, 28, 28), va.MNIST_BLACK)
    x[:, :, 12:16, 12:16] = 2.0
    return x


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    weight = (x - va.MNIST_BLACK).clamp(min=0)[:, 0]
    coords = torch.arange(28.0)
    rows = (weight.sum(2) * coords).sum(1) / weight.sum((1, 2))
    cols = (weight.sum(1) * coords).sum(1) / weight.sum((1, 2))
    return torch.stack([rows, cols], 1)


def test_an_affine_map_of_nothing_is_the_identity():
    x = torch.randn(4, 3, 16, 16)
    out = va.random_affine(x, degrees=0, translate=0, scale=0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_every_image_gets_its_own_shift_within_the_bound_and_the_border_is_filled():
    torch.manual_seed(0)
    x = dot_images(32)
    out = va.random_affine(x, degrees=0, translate=0.1, scale=0, fill=va.MNIST_BLACK)
    shifts = centre_of_mass(out) - centre_of_mass(x)
    assert shifts.abs().max() <= 0.1 * 28 + 0.5  # at most 10% of the image (and rounding)
    assert len({tuple(s.round().tolist()) for s in shifts}) > 5  # not one shift for the batch
    blank = torch.full((3, 1, 28, 28), va.MNIST_BLACK)
    big = va.random_affine(blank, degrees=45, translate=0.3, scale=0.5, fill=va.MNIST_BLACK)
    torch.testing.assert_close(big, blank)  # what comes in from outside is background


def test_zooms_change_the_size_of_the_digit():
    torch.manual_seed(1)
    x = dot_images(64)
    out = va.random_affine(x, degrees=0, translate=0, scale=0.3, fill=va.MNIST_BLACK)
    mass = (out - va.MNIST_BLACK).clamp(min=0).sum((1, 2, 3))
    before = (x - va.MNIST_BLACK).clamp(min=0).sum((1, 2, 3))
    ratio = mass / before
    assert ratio.min() < 0.8 and ratio.max() > 1.2  # smaller and larger squares


def test_a_batch_is_required():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        va.random_affine(torch.zeros(1, 28, 28))


def test_train_augment_acts_only_in_training_mode_and_is_seeded():
    augment = va.digit_augment()
    x = dot_images(4)
    net = nn.Sequential(augment, nn.Identity())
    torch.manual_seed(3)
    first = net(x)
    torch.manual_seed(3)
    assert torch.equal(net(x), first) and not torch.equal(first, x)
    net.eval()
    assert torch.equal(net(x), x)
    assert "rotate <= 10 deg" in repr(augment)


def test_photo_augment_shifts_and_flips():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    out = va.photo_augment(shift=2)(x)
    assert out.shape == x.shape
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    unchanged = [torch.equal(out[i], x[i]) for i in range(64)]
    assert any(flipped) and not all(unchanged)
