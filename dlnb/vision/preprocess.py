"""The preprocessing a pretrained image backbone expects: resize, centre-crop, scale, normalise."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to `resize`, centre-crop `size` x `size`, scale to [0, 1], normalise.

    Call it on one image (H, W) or (H, W, C) numpy/PIL, a list of images of any sizes, a numpy batch
    (N, H, W) or (N, H, W, C), or a torch batch (N, C, H, W); uint8 is read as 0..255, floats as 0..1.
    Grey images are repeated to 3 channels and an alpha channel is dropped. Returns (N, 3, size, size).
    """

    size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.resize < self.size:
            raise ValueError(
                f"Preprocess.resize ({self.resize}) must be at least size ({self.size})."
            )
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(
                f"interpolation must be 'bilinear' or 'bicubic', got {self.interpolation!r}."
            )

    def __str__(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{v:.3f}" for v in self.std)
        return (
            f"resize the shorter side to {self.resize} px ({self.interpolation}), centre-crop "
            f"{self.size} x {self.size}, scale to [0, 1], normalise with mean ({mean}) and std "
            f"({std})"
        )

    def at(self, size: int, crop: bool = True) -> Preprocess:
        """The same preprocessing at another resolution; `crop=False` cuts no margin (the shorter
        side is resized straight to `size`, as for small square images such as digits)."""
        return replace(
            self, size=size, resize=round(size * self.resize / self.size) if crop else size
        )

    def __call__(self, images, chunk: int = 2048) -> torch.Tensor:
        batches = []
        for batch in _as_batches(images):
            for start in range(0, len(batch), chunk):
                batches.append(self.normalize(self._resize_crop(batch[start : start + chunk])))
        return torch.cat(batches)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) floats in [0, 1] -> normalised with this backbone's mean and std."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo `normalize` (for showing a model input as an image), clipped to [0, 1]."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def _resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        scale = self.resize / min(h, w)
        new = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
        if new != (h, w):
            x = F.interpolate(
                x, size=new, mode=self.interpolation, align_corners=False, antialias=True
            )
            x = x.clamp(0, 1) if self.interpolation == "bicubic" else x
        top, left = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _to_float(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype == torch.bool:
        return x.float()
    if not x.is_floating_point():
        raise TypeError(f"Images must be uint8 (0..255), bool or float (0..1), got {x.dtype}.")
    x = x.float()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"Float images must lie in [0, 1], got values in [{float(x.min()):.3g}, "
            f"{float(x.max()):.3g}]. Pass uint8 pixels, or divide 0..255 floats by 255 first."
        )
    return x


def _channels_first(x: torch.Tensor, what: str) -> torch.Tensor:
    """(N, C, H, W) with C in {1, 3}: alpha dropped."""
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.shape[1] not in (1, 3):
        raise ValueError(
            f"{what} has {x.shape[1]} channels; images need 1 (grey), 3 (RGB) or 4 (RGBA)."
        )
    return x


def _one_image(image) -> torch.Tensor:
    """A single image (H, W), (H, W, C) numpy/PIL or (C, H, W) / (H, W) tensor -> (1, C, H, W)."""
    if isinstance(image, torch.Tensor):
        x = image if image.ndim == 3 else image.unsqueeze(0) if image.ndim == 2 else None
    else:
        array = np.asarray(image)
        if array.ndim == 2:
            array = array[:, :, None]
        x = (
            torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
            if array.ndim == 3
            else None
        )
    if x is None:
        raise ValueError(
            f"An image must be (H, W) or (H, W, C) (numpy, PIL) or (C, H, W) (torch); got shape "
            f"{tuple(np.shape(image))}. Pass a batch as one array instead of a list."
        )
    return _channels_first(_to_float(x).unsqueeze(0), f"An image of shape {tuple(np.shape(image))}")


def _as_batches(images) -> list[torch.Tensor]:
    """Everything `Preprocess` accepts -> float batches (n, C, H, W) in [0, 1] (one per size)."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("Preprocess got an empty list of images.")
        return [_one_image(im) for im in images]
    if isinstance(images, torch.Tensor):
        if images.ndim == 4:
            return [_channels_first(_to_float(images), f"A batch of shape {tuple(images.shape)}")]
        if images.ndim == 3 and images.shape[0] not in (1, 3, 4):  # (N, H, W) grey batch
            return [_to_float(images).unsqueeze(1)]
        return [_one_image(images)]
    array = np.asarray(images)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
        return [_one_image(array)]
    if array.ndim == 3:  # (N, H, W) grey batch
        return [_to_float(torch.from_numpy(np.ascontiguousarray(array))).unsqueeze(1)]
    if array.ndim == 4:  # (N, H, W, C)
        x = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
        return [_channels_first(_to_float(x), f"A batch of shape {array.shape}")]
    raise ValueError(
        f"Cannot read images of shape {array.shape}: pass one image (H, W) or (H, W, C), a list of "
        "images, a numpy batch (N, H, W) or (N, H, W, C), or a torch batch (N, C, H, W)."
    )
