"""Class weights of the training loss, and the training labels they are counted from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlnb.data.loaders import make_loaders
from dlnb.train.losses import class_weights, loader_labels


def test_balanced_weights_follow_scikit_learn_and_lists_are_checked():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 9 + [1] * 3)
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    assert np.allclose(class_weights("balanced", labels).numpy(), expected)
    assert class_weights([1, 4], labels).tolist() == [1.0, 4.0]
    with pytest.raises(ValueError, match="no training example of classes \\[1\\]"):
        class_weights("balanced", np.array([0, 2]))
    with pytest.raises(ValueError, match="one positive weight"):
        class_weights([1.0, -1.0], labels)


def test_loader_labels_reads_every_kind_of_loader():
    x, y = torch.randn(20, 2), torch.arange(20) % 3
    host = make_loaders(x, y, valid_fraction=0.25, seed=1)
    resident = make_loaders(x, y, valid_fraction=0.25, seed=1, device="cpu")
    assert sorted(loader_labels(host.train)) == sorted(loader_labels(resident.train))
    assert len(loader_labels(host.train)) == 15
    streamed = [(x[:4], y[:4]), (x[4:8], y[4:8])]
    assert loader_labels(streamed).tolist() == y[:8].tolist()
