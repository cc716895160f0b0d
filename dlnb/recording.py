"""Record a notebook's headline metrics; the nbs_ci runner collects them and checks its gates.

    from dlnb.recording import record
    record("test_accuracy", 0.991)

When `$DLNB_RECORD_FILE` is set (the runner sets it per notebook) each call appends one JSON
line to that file; in any case the value is shown and kept for `recorded()`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import sys

from dlnb.runtime import show

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_values: dict[str, float | int | str | bool] = {}


class _Line(str):
    """The one-line summary: printed as text, rendered as Markdown in a notebook."""

    def _repr_markdown_(self) -> str:
        return f"**recorded** `{self}`"


def _clean(name: str, value) -> float | int | str | bool:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):  # int and numpy integers
        return int(value)
    if isinstance(value, numbers.Real):  # float and numpy floats
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(
                f"record({name!r}, {value}): the value is not finite. A NaN or inf "
                "metric means the run diverged; fix the run rather than record it."
            )
        return value
    hint = " Call .item() on a one-element tensor or array first." if hasattr(value, "item") else ""
    raise TypeError(
        f"record({name!r}, ...) takes a number, string or bool, not {type(value).__name__}.{hint}"
    )


def _gpu_peak_bytes() -> int | None:
    """Peak CUDA memory allocated by this process, when it has used CUDA (torch already imported)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.max_memory_allocated())


def record(name: str, value) -> None:
    """Record headline metric `name` (a finite number, string or bool) for the notebook runner."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"record(name={name!r}): use an identifier-like name such as "
            "'test_accuracy' (letters, digits, '_' and '.', not starting with a digit)."
        )
    value = _clean(name, value)
    _values[name] = value
    path = os.environ.get("DLNB_RECORD_FILE")
    if path:
        line = {"name": name, "value": value}
        peak = _gpu_peak_bytes()
        if peak is not None:
            line["gpu_peak_bytes"] = peak
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    shown = f"{value:.4g}" if isinstance(value, float) else repr(value)
    show(_Line(f"{name} = {shown}"))


def recorded() -> dict[str, float | int | str | bool]:
    """The values recorded by this process so far (a copy)."""
    return dict(_values)
