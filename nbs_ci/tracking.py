"""Log a run to MLflow: one MLflow run per notebook in an experiment named after the profile.

The store is a local SQLite file, `<store>/mlflow.db` (artifacts under `<store>/artifacts`), by
default `mlflow/` next to the output folder (`runs/mlflow` for `runs/smoke` and `runs/full`), so
tonight's run sits beside last night's in the MLflow UI (`make mlflow`). Logging is best effort:
`track_summary` never raises, it returns what went wrong for the report to show.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from nbs_ci.results import FAILED, NotebookResult, RunSummary

STORE = "mlflow.db"
MAX_TAG = 5000  # MLflow keeps tag values up to 8000 characters


def default_store(out: Path) -> Path:
    """The MLflow store folder of a run written to `out`: `mlflow/` beside it."""
    return out.parent / "mlflow"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def notebook_record(nb: NotebookResult, summary: RunSummary) -> dict[str, dict]:
    """The params, metrics and tags one notebook's MLflow run gets (plain dicts, no MLflow)."""
    params = {"profile": summary.profile, "notebook": nb.name, "budget_s": nb.budget_s}
    params |= {str(k): v for k, v in (nb.parameters or {}).items() if k not in params}
    metrics: dict[str, float] = {}
    tags = {
        "profile": summary.profile,
        "notebook": nb.name,
        "status": nb.status,
        "reason": nb.reason[:MAX_TAG],
        "accelerator": nb.accelerator,
        "git_commit": summary.commit or "unknown",
        "run_started": summary.started,
        "host": str(summary.host.get("hostname", "")),
    }
    if summary.commit:
        tags["mlflow.source.git.commit"] = summary.commit
    for key, value in nb.metrics.items():
        number = _number(value)
        if number is not None:
            metrics[key] = number
        else:  # a string (or a non-finite number) is kept as a tag
            tags[f"metric.{key}"] = str(value)[:MAX_TAG]
    runner = {"duration_s": nb.duration_s, "peak_rss_mb": nb.peak_rss_mb}
    runner["gpu_peak_mb"] = nb.gpu_peak_mb
    metrics |= {f"runner/{k}": v for k, v in runner.items() if v is not None}
    for gate in nb.gates:
        metrics[f"gate/{gate['metric']}"] = float(bool(gate["passed"]))
    metrics["gates_passed"] = float(sum(bool(g["passed"]) for g in nb.gates))
    metrics["gates_total"] = float(len(nb.gates))
    return {"params": {k: str(v) for k, v in params.items()}, "metrics": metrics, "tags": tags}


def log_summary(summary: RunSummary, store: Path) -> int:
    """Log every notebook of `summary` to the MLflow store in `store`; the number of runs."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    store.mkdir(parents=True, exist_ok=True)
    for name in ("mlflow", "alembic"):  # table creation is announced at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store.resolve() / STORE}")
    experiment = client.get_experiment_by_name(summary.profile)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(
            summary.profile, artifact_location=(store.resolve() / "artifacts").as_uri()
        )
    )
    start = _ms(summary.started)
    for nb in summary.notebooks:
        found = notebook_record(nb, summary)
        end = start + int(1000 * (nb.duration_s or 0))
        run = client.create_run(
            experiment_id, start_time=start, tags=found["tags"], run_name=nb.name
        )
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, end, 0) for k, v in found["metrics"].items()],
            params=[Param(k, v) for k, v in found["params"].items()],
            tags=[RunTag("nbs_ci", "1")],
        )
        status = "FAILED" if nb.status in FAILED else "FINISHED"
        client.set_terminated(run.info.run_id, status, end_time=end)
        start = end
    return len(summary.notebooks)


def _ms(started: str) -> int:
    try:
        return int(datetime.fromisoformat(started).timestamp() * 1000)
    except ValueError:
        return int(datetime.now().timestamp() * 1000)


def track_summary(summary: RunSummary, store: Path) -> dict[str, Any]:
    """Log `summary` to MLflow; what happened: the store, experiment and runs, or the error."""
    found: dict[str, Any] = {"store": str(store), "experiment": summary.profile}
    try:
        found["runs"] = log_summary(summary, store)
    except Exception as e:  # a broken store must never fail the run
        found["error"] = f"{type(e).__name__}: {str(e).strip()[:500]}"
    return found
