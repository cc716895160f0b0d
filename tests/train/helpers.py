"""Shared by the training tests: a toy data set, weight comparison, a failing torch.save."""

from __future__ import annotations

from pathlib import Path

import torch


def toy_data(n: int = 64, n_valid: int = 11):
    """`n` training and `n_valid` validation examples of 8 features and 3 classes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + n_valid, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x[:n], y[:n], x[n:], y[n:]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0, rtol: float = 0.0) -> None:
    """Two state dicts hold the same tensors (to `atol`/`rtol`; exactly by default)."""
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol, msg=f"weights {k} differ")


def leftovers(folder: Path) -> list[str]:
    """The names of the files in `folder`, sorted."""
    return sorted(p.name for p in folder.iterdir())


def failing_save(obj, f, *args, **kwargs):
    """A `torch.save` that writes half a file, then fails like a full disk."""
    f.write(b"half a checkpoint")
    raise OSError("disk full")
