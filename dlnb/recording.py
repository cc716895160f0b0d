"""Record a notebook's headline metrics; the nbs_ci runner collects them and checks its gates.

    from dlnb.recording import record
    record("test_accuracy", 0.991)

When `$DLNB_RECORD_FILE` is set (the runner sets it per notebook) each call appends one JSON
line to that file; in any case the value is shown and kept for `recorded()`. To record many
values at once and show them as one table instead of one line each:

    record_many({"test_accuracy": 0.991, "epochs": 12})
    with shown_together():          # every record() inside, e.g. an Effect's five, in one table
        effect.record("ours_vs_baseline")
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dlnb.runtime import show

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_values: dict[str, float | int | str | bool] = {}
_held: list[list[tuple[str, float | int | str | bool]]] = []  # one list per open shown_together()
_EFFECT = ("_diff", "_low", "_high", "_n", "_verdict")  # what claims.Effect.record writes


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
    if _held:
        _held[-1].append((name, value))
    else:
        show(_Line(f"{name} = {_shown(value)}"))


def _shown(value: float | int | str | bool) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


class _Table(str):
    """Recorded values, one per line as text; one Markdown table in a notebook (an effect's
    `_diff`, `_low`, `_high`, `_n` and `_verdict` on one row)."""

    rows: list[tuple[str, float | int | str | bool]]

    def __new__(cls, rows: list[tuple[str, float | int | str | bool]]) -> _Table:
        text = super().__new__(cls, "\n".join(f"{n} = {_shown(v)}" for n, v in rows))
        text.rows = rows
        return text

    def _repr_markdown_(self) -> str:
        values = dict(self.rows)
        lines = [f"**recorded** {len(values)} values", "", "| name | value |", "|---|---|"]
        done: set[str] = set()
        for name, value in values.items():
            stem = _effect_stem(name, values)
            if not stem:
                lines.append(f"| `{name}` | {_shown(value)} |")
            elif stem not in done:
                done.add(stem)
                diff, low, high, n, verdict = (values[stem + s] for s in _EFFECT)
                lines.append(
                    f"| `{stem}_*` | {_shown(diff)} (95 % CI {_shown(low)} to {_shown(high)}, "
                    f"n {n}): {verdict} |"
                )
        return "\n".join(lines)


def _effect_stem(name: str, values: Mapping[str, object]) -> str:
    """The stem of `name` when it is one of a complete effect's five values, else ''."""
    for suffix in _EFFECT:
        stem = name[: -len(suffix)]
        if name.endswith(suffix) and all(stem + s in values for s in _EFFECT):
            return stem
    return ""


@contextmanager
def shown_together() -> Iterator[None]:
    """Record inside the block as usual, but show every value it recorded as one table at the end
    (in a notebook; one line each elsewhere) instead of one line per call. Blocks may nest: the
    outermost shows."""
    _held.append([])
    try:
        yield
    finally:
        rows = _held.pop()
        if _held:
            _held[-1].extend(rows)
        elif rows:
            show(_Table(rows))


def record_many(values: Mapping[str, object]) -> None:
    """`record` every name and value of `values` (in order), shown as one table."""
    with shown_together():
        for name, value in values.items():
            record(name, value)


def recorded() -> dict[str, float | int | str | bool]:
    """The values recorded by this process so far (a copy)."""
    return dict(_values)
