"""Rows of an input that is one array-like (a tensor, an array, a list) or a tuple of them: what
the host loaders and the device-resident loader both read examples with."""

from __future__ import annotations

from typing import Any

__all__ = ["num_rows", "rows"]


def rows(x: Any, index: Any) -> Any:
    """Rows `index` (an int or an index array) of `x`, or of each input when `x` is a tuple."""
    return tuple(part[index] for part in x) if isinstance(x, tuple) else x[index]


def num_rows(x: Any) -> int:
    """How many examples `x` holds (a tuple of inputs must agree on it)."""
    lengths = {len(part) for part in x} if isinstance(x, tuple) else {len(x)}
    if len(lengths) != 1:
        raise ValueError(f"The inputs of a tuple must have as many rows; got {sorted(lengths)}.")
    return lengths.pop()
