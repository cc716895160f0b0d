"""Your own images: `from_folder(root)` reads one folder per class (like torchvision's
ImageFolder) into model-ready tensors, and an `ImageClassifier` labels new image files and saves
itself with its preprocessing and class names."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlnb.vision.datasets import MNIST_MEAN, MNIST_STD
from dlnb.vision.preprocess import Preprocess

if TYPE_CHECKING:
    from dlnb.train.card import ModelCard

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "ImageClassifier",
    "from_folder",
    "image_inputs",
    "load_image_classifier",
    "write_image_folder",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ImageFolder:
    """Preprocessed images `x` (N, C, H, W), integer labels `y`, the class names and the files."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    files: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.y)


def _read(path: Path, grey: bool):
    """One image file as a PIL image (grey or RGB), or a ValueError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("L" if grey else "RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path} is not a readable image ({exc}). Remove or replace it.") from exc


def image_inputs(
    files: Sequence[str | Path] | str | Path, preprocess: Preprocess | None = None, size: int = 28
) -> torch.Tensor:
    """Image files as a model's inputs: the backbone's `preprocess` (RGB), or without one
    MNIST-like (grey, resized to `size` x `size`, normalised with MNIST's mean and std)."""
    if isinstance(files, (str, Path)):
        files = [files]
    if not files:
        raise ValueError("No image files given.")
    images = [_read(Path(f), grey=preprocess is None) for f in files]
    if preprocess is not None:
        return preprocess([np.array(im) for im in images])
    pixels = np.stack(
        [np.asarray(im.resize((size, size), resample=2)) for im in images]
    )  # bilinear
    x = torch.from_numpy(pixels).float().div_(255.0).unsqueeze(1)
    return (x - MNIST_MEAN) / MNIST_STD


def write_image_folder(
    images: np.ndarray, labels: Sequence[int], classes: Sequence[str], root: str | Path
) -> list[Path]:
    """Write grey uint8 `images` (N, H, W) as PNG files `root/<class name>/<row>.png`, the class
    name `classes[label]`, in the layout `from_folder` reads; returns the files in row order."""
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f"write_image_folder needs grey uint8 images (N, H, W) and one label each, got "
            f"{images.dtype} {images.shape} and {len(labels)} labels."
        )
    files = []
    for row, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = Path(root) / str(classes[int(label)]) / f"{row}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        files.append(path)
    return files


def from_folder(
    root: str | Path, preprocess: Preprocess | None = None, size: int = 28
) -> ImageFolder:
    """`root/<class>/<image>` files as an `ImageFolder` (classes sorted by folder name), preprocessed
    by `image_inputs(files, preprocess, size)`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; from_folder reads root/<class>/<image>.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not folders:
        hint = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise ValueError(
            f"{root} has no class folders{hint}: put each class's images in a subfolder named "
            "after the class, root/<class>/<image>."
        )
    files, labels, others = [], [], []
    for label, folder in enumerate(folders):
        entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
        others += [str(p.relative_to(root)) for p in entries if p not in images]
        if not images:
            raise ValueError(f"The class folder {folder} holds no images ({IMAGE_SUFFIXES}).")
        files += images
        labels += [label] * len(images)
    if others:
        raise ValueError(
            f"{len(others)} files under {root} are not images ({', '.join(others[:5])}"
            f"{', ...' if len(others) > 5 else ''}): move them out of the class folders."
        )
    if len(folders) < 2:
        raise ValueError(
            f"{root} has a single class folder ({folders[0].name}): a classifier needs at least "
            "two classes, one subfolder each."
        )
    x = image_inputs(files, preprocess, size)
    return ImageFolder(x, torch.tensor(labels), tuple(p.name for p in folders), tuple(files))


@dataclass
class ImageClassifier:
    """A trained network with its input preprocessing and class names; `architecture` (a
    `dlnb.models` class name and its arguments) lets `load_image_classifier` rebuild it alone."""

    net: nn.Module
    classes: tuple[str, ...]
    preprocess: Preprocess | None = None
    size: int = 28
    architecture: dict[str, Any] | None = None

    def predict(self, files: Sequence[str | Path] | str | Path) -> pd.DataFrame:
        """Per image file: the predicted `label` and each class's probability."""
        x = image_inputs(files, self.preprocess, self.size)
        device = next(self.net.parameters()).device
        with torch.no_grad():
            self.net.eval()
            probs = torch.softmax(self.net(x.to(device)).float(), 1).cpu().numpy()
        names = [str(files)] if isinstance(files, (str, Path)) else [str(f) for f in files]
        frame = pd.DataFrame(probs, columns=[f"p({c})" for c in self.classes], index=names)
        frame.insert(0, "label", np.asarray(self.classes, dtype=object)[probs.argmax(1)])
        return frame

    def save(self, directory: str | Path, card: ModelCard | dict | None = None) -> Path:
        """Write the weights (safetensors), the preprocessing, classes, architecture (JSON) and a
        model card: `card`, or one filled with what the classifier knows (a dict's fields override)."""
        from dlnb.train.card import ModelCard
        from dlnb.train.saving import save_model

        meta = {
            "kind": "dlnb.vision",
            "classes": list(self.classes),
            "preprocess": None if self.preprocess is None else dataclasses.asdict(self.preprocess),
            "size": self.size,
            "architecture": self.architecture,
        }
        if not isinstance(card, ModelCard):
            arch = (self.architecture or {}).get("name", type(self.net).__name__)
            inputs = "MNIST-like grey" if self.preprocess is None else "RGB, backbone-preprocessed"
            card = {
                "name": f"{arch} image classifier",
                "description": f"Labels {inputs} images as one of {list(self.classes)}.",
                "intended_use": f"Labelling images like its training images as {list(self.classes)}.",
                "limitations": [
                    "Images unlike the training images (other sources, sizes, classes) are untested.",
                    *(
                        []
                        if (card or {}).get("metrics")
                        else [
                            "No test metrics were recorded with this save: pass card={'metrics': "
                            "dlnb.lifecycle.metrics_on(...)} with the test set they were measured on."
                        ]
                    ),
                ],
                **(card or {}),
            }
        return save_model(directory, self.net, meta, card)


def load_image_classifier(directory: str | Path, net: nn.Module | None = None) -> ImageClassifier:
    """The `ImageClassifier` saved in `directory`, into `net` or one rebuilt from its architecture."""
    from dlnb import models
    from dlnb.train.saving import load_model_files, load_weights_into

    state, meta = load_model_files(directory)
    if meta.get("kind") != "dlnb.vision":
        raise ValueError(
            f"{directory} holds a {meta.get('kind')!r} model, not an image classifier."
        )
    if net is None:
        arch = dict(meta.get("architecture") or {})
        builder = getattr(models, str(arch.pop("name", "")), None)
        if builder is None:
            raise ValueError(
                f"{directory} records no dlnb.models architecture to rebuild: pass net= a model "
                "built with the settings it was saved with."
            )
        net = builder(**arch)
    load_weights_into(net, state, str(directory))
    pre: dict[str, Any] | None = meta["preprocess"]
    preprocess = None
    if pre is not None:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}
        preprocess = Preprocess(**values)
    return ImageClassifier(
        net, tuple(meta["classes"]), preprocess, meta["size"], meta["architecture"]
    )
