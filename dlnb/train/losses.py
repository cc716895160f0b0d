"""What the training loss is weighted by: per-class weights that make a loss pay attention to a
rare class, and the training labels they are counted from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["class_weights", "loader_labels"]


def class_weights(
    spec: str | Sequence[float], labels: np.ndarray | Sequence[int], n_classes: int | None = None
) -> torch.Tensor:
    """Per-class loss weights: `spec` "balanced" (n / (classes x count), as scikit-learn) or a list."""
    labels = np.asarray(labels).astype(int)
    n = max(int(labels.max()) + 1 if len(labels) else 0, n_classes or 0)
    if isinstance(spec, str):
        if spec != "balanced":
            raise ValueError(f"class_weight must be 'balanced' or a list of floats, not {spec!r}.")
        counts = np.bincount(labels, minlength=n)
        if (counts == 0).any():
            raise ValueError(
                f"class_weight='balanced' found no training example of classes "
                f"{np.flatnonzero(counts == 0).tolist()}; give weights as a list instead."
            )
        return torch.tensor(len(labels) / (n * counts), dtype=torch.float32)
    weights = torch.tensor([float(w) for w in spec], dtype=torch.float32)
    if len(weights) < n or not bool((weights > 0).all()):
        raise ValueError(
            f"class_weight needs one positive weight per class ({n} classes); got {list(spec)}."
        )
    return weights


def loader_labels(loader) -> np.ndarray:
    """Every training target behind `loader` (a `GpuLoader`, a DataLoader of pairs), in one array."""
    y = getattr(loader, "y", None)  # dlnb's GpuLoader
    if isinstance(y, torch.Tensor):
        return y.cpu().numpy()
    dataset: Any = getattr(loader, "dataset", None)
    index = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, index = dataset.dataset, np.asarray(dataset.indices)
    y = getattr(dataset, "y", None)  # dlnb's PairDataset
    if y is not None:
        labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        return labels if index is None else labels[index]
    return np.concatenate([np.asarray(batch[1]) for batch in loader])
