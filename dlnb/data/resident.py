"""A loader for datasets that fit in device memory: the whole tensor lives on the GPU and is
shuffled, batched and augmented there, with no worker processes and no host-to-device copies
per batch (the approach of KellerJordan/cifar10-airbench). On a CPU it is simply a fast loader.
`make_loaders(..., device=...)` builds one per split.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from dlnb.data.arrays import num_rows, rows
from dlnb.runtime import pick_device


def random_translate(
    x: torch.Tensor, shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image of an (N, C, H, W) batch by up to `shift` pixels in x and y (reflect padding)."""
    if shift == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
    dy, dx = torch.randint(-shift, shift + 1, (2, n, 1), device=x.device, generator=generator)
    rows = torch.arange(h, device=x.device) + shift + dy  # (n, h): rows to read, per image
    cols = torch.arange(w, device=x.device) + shift + dx
    x = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * shift))
    return x.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of an (N, C, H, W) batch left to right."""
    mask = torch.rand(len(x), device=x.device, generator=generator) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


class GpuLoader:
    """Iterate `(x, y)` batches of device-resident tensors, shuffled and augmented on the device.

    `x` is a tensor or a tuple of tensors (several inputs, batched together). `translate` shifts
    images by up to that many pixels and `flip` mirrors half of them (leave it off for digits). Shuffling and augmentation are seeded by `(seed, epoch)`, so a resumed run
    sees the same batches; `set_epoch` is called by `fit`, otherwise each pass advances the epoch.
    """

    def __init__(
        self,
        x: torch.Tensor | tuple[torch.Tensor, ...],
        y: torch.Tensor,
        batch_size: int = 512,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        device: str | torch.device = "auto",
        translate: int = 0,
        flip: bool = False,
        seed: int = 0,
    ) -> None:
        if num_rows(x) != len(y):
            raise ValueError(
                f"x has {num_rows(x)} examples but y has {len(y)}; pass matching tensors."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if translate or flip:
            if isinstance(x, tuple) or x.ndim != 4:
                shape = "a tuple of inputs" if isinstance(x, tuple) else tuple(x.shape)
                raise ValueError(
                    f"Augmentation needs images shaped (N, C, H, W), got {shape}; "
                    "add a channel dimension (x[:, None]) or set translate=0, flip=False."
                )
            if translate and not 0 < translate < min(x.shape[-2:]):
                raise ValueError(f"translate={translate} must be between 1 and the image size - 1.")
            if not x.is_floating_point():
                raise TypeError(
                    f"Augmentation needs floating-point images, got {x.dtype}; "
                    "convert with x.float() (and normalise) first."
                )
        self.device = pick_device(device) if isinstance(device, str) else device
        self.x = tuple(p.to(self.device) for p in x) if isinstance(x, tuple) else x.to(self.device)
        self.y = y.to(self.device)
        inputs = self.x if isinstance(self.x, tuple) else (self.x,)
        self.dataset = TensorDataset(*inputs, self.y)  # as DataLoader has: len(loader.dataset)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.translate = translate
        self.flip = flip
        self.seed = seed
        self.epoch = 0
        self.rank, self.world, self.even = 0, 1, True

    def shard(self, rank: int, world: int, even: bool = True) -> GpuLoader:
        """A copy that yields only this rank's share (same tensors, no copy of the data).

        `even` gives every rank as many examples (wrapping around, or dropping the rest with
        drop_last), as training under DDP needs; `even=False` gives a strided slice with every
        example exactly once over all ranks, for evaluation.
        """
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside a group of {world} processes.")
        shard = copy.copy(self)
        shard.rank, shard.world, shard.even = rank, world, even
        return shard

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation the next pass uses."""
        self.epoch = epoch

    def _num_examples(self) -> int:
        n = len(self.y)
        if not self.even:
            return len(range(self.rank, n, self.world))
        # Every training rank must see the same number of batches, or DDP waits forever.
        return n // self.world if self.drop_last else math.ceil(n / self.world)

    def __len__(self) -> int:
        n = self._num_examples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _indices(self, epoch: int) -> torch.Tensor:
        n, per_rank = len(self.y), self._num_examples()
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if not self.even:
            return order[self.rank :: self.world].to(self.device)
        total = per_rank * self.world
        if total > n:  # pad by wrapping around, as DistributedSampler does
            order = torch.cat([order, order[: total - n]])
        return order[self.rank : total : self.world].to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        indices = self._indices(epoch)
        augment = self.translate or self.flip
        if augment:
            g = torch.Generator(device=self.device)
            g.manual_seed(self.seed * 100_003 + epoch * self.world + self.rank)
        for i in range(len(self)):
            idx = indices[i * self.batch_size : (i + 1) * self.batch_size]
            xb = rows(self.x, idx)
            if augment:
                xb = random_translate(xb, self.translate, g)
                if self.flip:
                    xb = random_flip(xb, g)
            yield xb, self.y[idx]
