"""Every manifest entry's smoke profile, run through nbs_ci: it must pass and meet its gates."""

from __future__ import annotations

import json

import pytest

import nbs_ci
from nbs_ci.results import NotebookResult
from nbs_ci.runner import cuda_available

ENTRIES = nbs_ci.load_manifest().entries


def failure_details(result: NotebookResult) -> str:
    """What went wrong, in the words of the report: status, reason, gates, failing cell, traceback."""
    error = result.error or {}
    gates = "\n".join(
        f"  {g['metric']} {g['op']} {g['threshold']!r}: actual {g['actual']!r} "
        f"{'ok' if g['passed'] else 'MISSED ' + g['reason']}"
        for g in result.gates
    )
    return (
        f"{result.name}: {result.status} ({result.reason}) after {result.duration_s} s\n"
        f"gates:\n{gates or '  none'}\nmetrics: {json.dumps(result.metrics)}\n"
        f"cell that failed (or was running when stopped):\n{error.get('source', '')}\n"
        f"{error.get('traceback', '')}"
    )


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_smoke_profile_passes_its_gates(entry, tmp_path):
    if entry.accelerator == "gpu" and not cuda_available():
        pytest.skip(f"{entry.name} needs a CUDA GPU (accelerator: gpu)")
    summary = nbs_ci.run("smoke", only=[entry.name], out=tmp_path, log=lambda line: None)
    (result,) = summary.notebooks
    assert result.status == "passed", (
        f"{failure_details(result)}\nexecuted: {tmp_path / result.name}.ipynb"
    )
    assert all(g["passed"] for g in result.gates), failure_details(result)
