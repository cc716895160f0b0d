"""Metric regression tests for your own model: compare its metrics with a stored baseline.

    check = check_metrics({"accuracy": 0.953, "loss": 0.16}, "baselines/model.json")

passes when no metric is worse than its baseline by more than `tolerance` (absolute, in the bad
direction: accuracy down, loss up; better is always fine) and raises `MetricRegression` (an
AssertionError, so pytest reports it as a failed test) with a table otherwise. The baseline is a
JSON file (metric -> value, plus how and when it was measured) that `update=True` (or
`pytest --dlnb-update-baselines` with `dlnb.lifecycle.pytest_plugin`) writes.
"""

from __future__ import annotations

import json
import math
import operator
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlnb.train.card import package_versions

__all__ = [
    "DEFAULT_TOLERANCE",
    "LOWER_IS_BETTER",
    "MetricCheck",
    "MetricRegression",
    "check_metrics",
]

DEFAULT_TOLERANCE = 0.01
#: Name parts (split at `_`, `-`, `.`, `/`, spaces) of metrics where smaller is better.
LOWER_IS_BETTER = frozenset(
    "loss nll error err rmse mae mse perplexity ppl latency ms seconds s time duration ece brier "
    "wer cer".split()
)
UPDATE_HINT = (
    "run `pytest --dlnb-update-baselines` (with dlnb.lifecycle.pytest_plugin) or call "
    "check_metrics(..., update=True) once, then commit the baseline file"
)


class MetricRegression(AssertionError):
    """A metric is worse than its stored baseline by more than the tolerance, or the baseline is
    missing; the message holds the table of metric, baseline, now, allowed and verdict."""


def _is_higher_better(name: str) -> bool:
    """Whether a larger value of metric `name` is better: False for losses, errors, times."""
    return not (set(re.split(r"[\s_\-./]+", name.lower())) & LOWER_IS_BETTER)


@dataclass
class MetricCheck:
    """The comparison of metrics with a baseline: one row per metric, and whether all passed."""

    baseline: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    updated: bool = False

    @property
    def passed(self) -> bool:
        """True when no row is a regression (or a metric missing now)."""
        return not any(r["verdict"] in ("REGRESSION", "MISSING") for r in self.rows)

    def table(self) -> str:
        """The rows as an aligned text table: metric / baseline / now / allowed / verdict."""
        header = ("metric", "baseline", "now", "allowed", "verdict")
        body = [
            (r["metric"], _num(r["baseline"]), _num(r["now"]), r["allowed"], r["verdict"])
            for r in self.rows
        ]
        widths = [max(len(str(row[i])) for row in (header, *body)) for i in range(len(header))]
        return "\n".join(
            "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in (header, *body)
        )

    def __str__(self) -> str:
        what = "written to" if self.updated else "compared with"
        when = self.measured.get("when", "?")
        return f"metrics {what} {self.baseline} (baseline measured {when}):\n{self.table()}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _read_baseline(path: str | Path) -> dict[str, Any]:
    """A stored baseline: {"metrics": {name: value}, "measured": {how, when, versions}}."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        raise ValueError(
            f"{path} is not a dlnb metric baseline (no `metrics` mapping); {UPDATE_HINT}."
        )
    return raw


def _write_baseline(
    path: str | Path, metrics: Mapping[str, float], how: str = "", **extra: Any
) -> dict[str, Any]:
    """Store `metrics` as the baseline at `path`, with how and when they were measured."""
    measured = {
        "how": how or "dlnb.lifecycle.check_metrics(..., update=True)",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": package_versions(["dlnb", "torch", "numpy"]),
        **extra,
    }
    record = {"metrics": {k: float(v) for k, v in metrics.items()}, "measured": measured}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _row(name: str, base: float | None, now: float | None, tol: float, higher: bool) -> dict:
    """One metric's comparison: the bound it must meet and the verdict."""
    row: dict[str, Any] = {"metric": name, "baseline": base, "now": now, "higher_is_better": higher}
    if base is None:
        return {**row, "allowed": "-", "verdict": "new (not in baseline)"}
    bound, ok = (base - tol, operator.ge) if higher else (base + tol, operator.le)
    row["allowed"] = f"{'>=' if higher else '<='} {bound:.6g}"
    if now is None or not math.isfinite(now):
        return {**row, "verdict": "MISSING" if now is None else "REGRESSION"}
    slack = 1e-9 * max(1.0, abs(base))  # exactly at the tolerance passes despite rounding
    if not ok(now, bound - slack if higher else bound + slack):
        return {**row, "verdict": "REGRESSION"}
    better = now > base if higher else now < base
    return {**row, "verdict": "better" if better and abs(now - base) > tol else "ok"}


def check_metrics(
    metrics: Mapping[str, float],
    baseline: str | Path,
    *,
    tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE,
    higher_is_better: Mapping[str, bool] | None = None,
    update: bool = False,
    how: str = "",
) -> MetricCheck:
    """Compare `metrics` with the baseline JSON at `baseline`; raise `MetricRegression` with a
    table when one is worse by more than its (absolute) `tolerance` in its bad direction.

    A metric the baseline has but `metrics` lacks fails; a new one passes, marked new.

    Args:
        metrics: metric name -> value measured now.
        baseline: the baseline JSON file (relative paths from the current directory).
        tolerance: how much worse a metric may be, absolute: one for all, or per metric name
            (names left out get `DEFAULT_TOLERANCE`).
        higher_is_better: per metric name, its direction; by default it comes from the name
            (losses, errors and times go down, anything else up).
        update: write `metrics` as the new baseline instead of comparing.
        how: with `update`, how the metrics were measured, stored beside them.
    """
    path = Path(baseline)
    values = {k: float(v) for k, v in metrics.items()}
    if update:
        record = _write_baseline(path, values, how)
        rows = [
            _row(k, None, v, 0.0, True) | {"verdict": "baseline written"} for k, v in values.items()
        ]
        return MetricCheck(path, rows, record["measured"], updated=True)
    if not path.is_file():
        raise MetricRegression(f"No metric baseline at {path}: to create it, {UPDATE_HINT}.")
    stored = _read_baseline(path)
    directions = dict(higher_is_better or {})
    rows = []
    for name in [*stored["metrics"], *(k for k in values if k not in stored["metrics"])]:
        tol = (
            tolerance.get(name, DEFAULT_TOLERANCE) if isinstance(tolerance, Mapping) else tolerance
        )
        higher = directions.get(name, _is_higher_better(name))
        base = stored["metrics"].get(name)
        rows.append(
            _row(name, None if base is None else float(base), values.get(name), tol, higher)
        )
    check = MetricCheck(path, rows, dict(stored.get("measured") or {}))
    if not check.passed:
        raise MetricRegression(
            f"{check}\nA metric regressed beyond its tolerance (or is missing). If the change is "
            f"intended, {UPDATE_HINT}."
        )
    return check
