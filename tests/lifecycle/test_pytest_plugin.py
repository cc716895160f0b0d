"""The pytest plugin: `--dlnb-update-baselines` and the `metric_baseline` fixture, run by pytester."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

TEST = """
def test_model(metric_baseline):
    metric_baseline({{"accuracy": {accuracy}, "loss": 0.2}}, "baselines/model.json", tolerance=0.02)
"""


@pytest.fixture
def project(pytester):
    pytester.makeconftest('pytest_plugins = ["dlnb.lifecycle.pytest_plugin"]')
    return pytester


def _baseline(pytester) -> dict:
    return json.loads((pytester.path / "baselines" / "model.json").read_text())


def test_a_missing_baseline_fails_and_says_how_to_create_it(project):
    project.makepyfile(test_model=TEST.format(accuracy=0.9))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*No metric baseline at*--dlnb-update-baselines*"])


def test_update_writes_the_baseline_then_it_passes_and_catches_a_regression(project):
    project.makepyfile(test_model=TEST.format(accuracy=0.9))
    written = project.runpytest("--dlnb-update-baselines")
    written.assert_outcomes(passed=1)
    written.stdout.fnmatch_lines(["*dlnb: wrote 1 metric baseline(s)*", "*baselines*model.json"])
    stored = _baseline(project)
    assert stored["metrics"] == {"accuracy": 0.9, "loss": 0.2}
    assert stored["measured"]["how"] == "pytest test_model.py::test_model"
    project.runpytest().assert_outcomes(passed=1)
    project.makepyfile(test_model=TEST.format(accuracy=0.89))  # within the 0.02 tolerance
    project.runpytest().assert_outcomes(passed=1)
    project.makepyfile(test_model=TEST.format(accuracy=0.85))
    failed = project.runpytest()
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        ["*metric*baseline*now*allowed*verdict*", "*accuracy*0.9*0.85*>= 0.88*REGRESSION*"]
    )
    assert _baseline(project) == stored  # a failing run leaves the baseline alone


def test_the_plugin_also_loads_with_dash_p(pytester):
    pytester.makepyfile(test_model=TEST.format(accuracy=0.9))
    pytester.runpytest("-p", "dlnb.lifecycle.pytest_plugin", "--dlnb-update-baselines")
    result = pytester.runpytest("-p", "dlnb.lifecycle.pytest_plugin")
    result.assert_outcomes(passed=1)
    assert pytester.runpytest().ret != 0  # without the plugin: no fixture
