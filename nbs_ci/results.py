"""A run's results as types: one `NotebookResult` per notebook, and the `RunSummary` around them.

`RunSummary.to_json()` is the shape of `summary.json`; `RunSummary.from_json()` reads it back,
also from older runners (missing keys take their defaults, unknown per-notebook keys are ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

STATUSES = ("passed", "failed", "timed_out", "missed_gate", "skipped")
FAILED = ("failed", "timed_out", "missed_gate")


@dataclass
class NotebookResult:
    """What happened to one notebook: its outcome, timings, memory, metrics, gates and files.

    `gates` are `Gate.check` results and `error` the failing cell (or runner) as `nbs_ci.child`
    reports it; `notebook` is the executed notebook's file name in the output folder, if any;
    `parameters` are those injected, None when the notebook was not run.
    """

    name: str
    accelerator: str = "cpu"
    budget_s: float | None = None
    status: str = ""
    reason: str = ""
    duration_s: float | None = None
    peak_rss_mb: float | None = None
    gpu_peak_mb: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    notebook: str | None = None
    reference: str = ""
    parameters: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """True when the notebook failed, timed out or missed a gate."""
        return self.status in FAILED

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this notebook in `summary.json` (no `parameters` when not run)."""
        found = asdict(self)
        if self.parameters is None:
            del found["parameters"]
        return found

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NotebookResult:
        """Read one notebook of a `summary.json`, written by this runner or an older one."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class RunSummary:
    """One run of a profile: when, where, the provenance hook's findings and every notebook.

    `provenance` holds the top-level keys the provenance hook adds (device, versions, datasets).
    """

    profile: str = ""
    started: str = ""
    duration_s: float | None = None
    ok: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    commit: str | None = None
    manifest: str = ""
    kernel: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)  # where the run was logged to MLflow
    provenance: dict[str, Any] = field(default_factory=dict)
    notebooks: list[NotebookResult] = field(default_factory=list)

    @classmethod
    def of(cls, notebooks: list[NotebookResult], **info: Any) -> RunSummary:
        """A summary of `notebooks` with their status counts and overall verdict filled in."""
        return cls(
            ok=not any(nb.failed for nb in notebooks),
            counts={s: sum(nb.status == s for nb in notebooks) for s in STATUSES},
            notebooks=notebooks,
            **info,
        )

    def to_json(self) -> dict[str, Any]:
        """The `summary.json` object: the fields in order, provenance keys before `notebooks`
        (no `tracking` when the run was not logged to MLflow)."""
        found = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.tracking:
            del found["tracking"]
        provenance, notebooks = found.pop("provenance"), found.pop("notebooks")
        return {**found, **provenance, "notebooks": [nb.to_json() for nb in notebooks]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RunSummary:
        """Read a `summary.json` object back; top-level keys that are not fields are provenance."""
        known = {f.name for f in fields(cls)} - {"provenance", "notebooks"}
        return cls(
            **{k: v for k, v in raw.items() if k in known},
            provenance={k: v for k, v in raw.items() if k not in known and k != "notebooks"},
            notebooks=[NotebookResult.from_json(nb) for nb in raw.get("notebooks") or []],
        )
