"""A pytest plugin that puts your own model's metrics under CI, as dlnb's gates do its notebooks.

Enable it in a `conftest.py` with `pytest_plugins = ["dlnb.lifecycle.pytest_plugin"]` (or run
`pytest -p dlnb.lifecycle.pytest_plugin`); then a test asks for the `metric_baseline` fixture:

    def test_my_model(metric_baseline):
        metrics = evaluate_my_model()
        metric_baseline(metrics, "baselines/my_model.json", tolerance=0.02)

A relative baseline path is relative to the test file's folder. `pytest --dlnb-update-baselines`
writes the baselines instead of comparing (commit them); the summary lists what was written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dlnb.lifecycle.regression import MetricCheck, check_metrics

__all__ = ["OPTION", "metric_baseline", "pytest_addoption", "pytest_terminal_summary"]

OPTION = "--dlnb-update-baselines"
_WRITTEN = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--dlnb-update-baselines` (write metric baselines instead of comparing with them)."""
    parser.getgroup("dlnb").addoption(
        OPTION,
        action="store_true",
        default=False,
        help="write the metric baselines of `metric_baseline` tests instead of checking them",
    )


@pytest.fixture
def metric_baseline(request: pytest.FixtureRequest) -> Callable[..., MetricCheck]:
    """`check(metrics, baseline, *, tolerance=0.01, higher_is_better=None)`: `check_metrics` with
    the path relative to the test file and `--dlnb-update-baselines` deciding whether to write."""
    update = bool(request.config.getoption(OPTION))

    def check(metrics: Mapping[str, float], baseline: str | Path, **options: Any) -> MetricCheck:
        path = Path(baseline)
        path = path if path.is_absolute() else request.path.parent / path
        result = check_metrics(
            metrics, path, update=update, how=f"pytest {request.node.nodeid}", **options
        )
        if result.updated:
            request.config.stash.setdefault(_WRITTEN, []).append(str(path))
        return result

    return check


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List the baselines that `--dlnb-update-baselines` wrote in this session."""
    written = config.stash.get(_WRITTEN, [])
    if written:
        terminalreporter.write_sep("-", f"dlnb: wrote {len(written)} metric baseline(s)")
        for path in written:
            terminalreporter.write_line(path)
