"""Experiment tracking with MLflow on a local SQLite store: no server, no network.

    with start_run("mnist-cnn", params={"lr": 1e-3}, data_fingerprint=fp):
        fit(model, loaders, config, callbacks=[TrackingCallback()])
        log_model(model_dir)
    runs_table()  # one row per run: params, metrics, tags

The store is `<root>/mlflow.db` with artifacts in `<root>/artifacts`; `root` defaults to
$DLNB_MLFLOW, else `runs/mlflow` under the current directory. `make mlflow` opens the UI on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlnb.runtime import pick_device
from dlnb.train import distributed as dist
from dlnb.train.callbacks import Callback
from dlnb.train.saving import load_model_files, save_model

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import ActiveRun, MlflowClient

__all__ = [
    "TrackingCallback",
    "TrackingError",
    "log_comparison",
    "log_metrics",
    "log_model",
    "runs_table",
    "start_run",
    "tracking_uri",
]

STORE = "mlflow.db"
ARTIFACTS = "artifacts"
# MLflow and alembic announce every table they create at INFO; warnings still come through.
QUIET_LOGGERS = ("mlflow", "alembic")


class TrackingError(RuntimeError):
    """The tracking store cannot be used (missing and uncreatable, or read-only)."""


def _root(root: str | Path | None) -> Path:
    return Path(root or os.environ.get("DLNB_MLFLOW") or Path.cwd() / "runs" / "mlflow").resolve()


def tracking_uri(root: str | Path | None = None) -> str:
    """The SQLite store URI `sqlite:///<root>/mlflow.db`, creating `root` (default $DLNB_MLFLOW,
    else runs/mlflow under the current directory); raises TrackingError if it is not writable."""
    folder = _root(root)
    fix = "set DLNB_MLFLOW to a writable folder or pass root=..."
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrackingError(
            f"The MLflow store folder {folder} does not exist and cannot be created "
            f"({type(e).__name__}: {e.strerror or e}); {fix}."
        ) from None
    store = folder / STORE
    if not os.access(folder, os.W_OK | os.X_OK) or (
        store.exists() and not os.access(store, os.W_OK)
    ):
        raise TrackingError(f"The MLflow store {store} is read-only; {fix}.")
    return f"sqlite:///{store}"


def _quiet() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _client(root: str | Path | None) -> MlflowClient:
    from mlflow import MlflowClient

    uri = tracking_uri(root)
    _quiet()
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: MlflowClient, name: str, root: str | Path | None) -> str:
    """The id of experiment `name`, created with its artifacts next to the store when new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (_root(root) / ARTIFACTS / name).as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path.cwd()
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _code_version() -> dict[str, str]:
    """The git commit and whether the checkout has uncommitted changes; "unknown" outside git."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit,
        "git_dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
        "mlflow.source.git.commit": commit,
    }


def _dlnb_version() -> str:
    """The installed dlnb's version, from the package metadata ("unknown" when not installed)."""
    try:
        return version("dlnb")
    except PackageNotFoundError:
        return "unknown"


def _environment() -> dict[str, str]:
    """Versions of Python, torch and dlnb, the platform and the default device, as tags."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dlnb": _dlnb_version(),
        "platform": platform.platform(),
        "device": str(pick_device("auto")),
    }


def _run_tags(tags: Mapping | None, data_fingerprint: str | None) -> dict[str, str]:
    found = {**_code_version(), **_environment()}
    if data_fingerprint is not None:
        found["data_fingerprint"] = data_fingerprint
    found.update({str(k): str(v) for k, v in (tags or {}).items()})
    return found


def _params(params: Mapping | None, data_fingerprint: str | None) -> dict[str, str]:
    found = {str(k): _text(v) for k, v in (params or {}).items()}
    if data_fingerprint is not None:
        found["data_fingerprint"] = data_fingerprint
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


@contextlib.contextmanager
def start_run(
    name: str,
    *,
    experiment: str = "dlnb",
    root: str | Path | None = None,
    params: dict | None = None,
    tags: dict | None = None,
    data_fingerprint: str | None = None,
    nested: bool = False,
) -> Iterator[ActiveRun]:
    """A tracked MLflow run named `name`, logging params, data fingerprint, code version and
    environment on entry; ended FAILED (and the error re-raised) when the block raises.

    Args:
        name: the run's name.
        experiment: the MLflow experiment the run belongs to (created when missing).
        root: the tracking store's folder (default `$DLNB_MLFLOW`, else `runs/mlflow`).
        params: logged as the run's params (non-strings as JSON).
        tags: extra tags, beside the code version and environment tagged on every run.
        data_fingerprint: names the data the run used (a param and a tag).
        nested: start a child run of the active run, in its parent's store.
    """
    import mlflow

    parent = mlflow.active_run()
    uri = mlflow.get_tracking_uri()
    if nested and parent is not None and root is None and uri.startswith("sqlite:///"):
        root = Path(uri.removeprefix("sqlite:///")).parent  # a child run joins its parent's store
    mlflow.set_tracking_uri(tracking_uri(root))
    _quiet()
    experiment_id = _experiment_id(mlflow.MlflowClient(), experiment, root)
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=name,
        nested=nested,
        tags=_run_tags(tags, data_fingerprint),
    )
    try:
        found = _params(params, data_fingerprint)
        if found:
            mlflow.log_params(found)
        yield run
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run()


def _finite(metrics: Mapping) -> tuple[dict[str, float], list[str]]:
    """The finite numeric entries of `metrics` as floats, and the names of those left out."""
    kept, skipped = {}, []
    for key, value in metrics.items():
        number = float(value) if isinstance(value, Real) else math.nan
        if math.isfinite(number):
            kept[str(key)] = number
        else:
            skipped.append(f"{key}={value!r}")
    return kept, skipped


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log `metrics` to the active run at `step`; non-numeric and non-finite values are skipped
    with a warning."""
    import mlflow

    if mlflow.active_run() is None:
        raise TrackingError(
            "log_metrics needs an active run: call it inside `with start_run(...)`."
        )
    kept, skipped = _finite(metrics)
    if skipped:
        warnings.warn(f"Not logged (not a finite number): {', '.join(skipped)}.", stacklevel=2)
    if kept:
        mlflow.log_metrics(kept, step=step)


def log_model(directory: str | Path, artifact_path: str = "model") -> None:
    """Log a saved-model folder (`save_model`'s weights and dlnb.json) as the active run's
    artifacts under `artifact_path`, after checking the weights' hash."""
    import mlflow

    if mlflow.active_run() is None:
        raise TrackingError("log_model needs an active run: call it inside `with start_run(...)`.")
    load_model_files(directory)  # a folder that is not a saved model, or altered weights, raises
    mlflow.log_artifacts(str(directory), artifact_path)


def runs_table(experiment: str = "dlnb", root: str | Path | None = None) -> pd.DataFrame:
    """One row per run of `experiment`, oldest first: run name, status, start time, then
    `params.*`, `metrics.*` (last values) and `tags.*` columns."""
    import pandas as pd

    client = _client(root)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], order_by=["start_time ASC"]) if found else []
    rows = []
    for r in runs:
        rows.append(
            {
                "run": r.info.run_name,
                "status": r.info.status,
                "start_time": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC"),
                "run_id": r.info.run_id,
                **{f"params.{k}": v for k, v in sorted(r.data.params.items())},
                **{f"metrics.{k}": v for k, v in sorted(r.data.metrics.items())},
                **{f"tags.{k}": v for k, v in sorted(r.data.tags.items())},
            }
        )
    return pd.DataFrame(rows, columns=None if rows else ["run", "status", "start_time", "run_id"])


class TrackingCallback(Callback):
    """Log a `fit`'s per-epoch metrics (losses, accuracies, lr, epoch seconds) at step=epoch.

    Inside an active run (`start_run`) it logs there; otherwise it opens its own run named `name`
    in `experiment` with the TrainConfig as params, ending it when the fit ends. With
    `log_weights=True` the trained weights are saved (dlnb saving format) and logged as `model`.
    Only rank 0 logs under DDP.
    """

    def __init__(
        self,
        name: str = "fit",
        *,
        experiment: str = "dlnb",
        root: str | Path | None = None,
        data_fingerprint: str | None = None,
        log_weights: bool = False,
    ):
        self.name, self.experiment, self.root = name, experiment, root
        self.data_fingerprint, self.log_weights = data_fingerprint, log_weights
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.own_run = False

    def on_fit_start(self, state) -> None:
        """Join the active run, or open one of its own; log the TrainConfig as params."""
        if not dist.is_main_process():
            return
        import mlflow

        active = mlflow.active_run()
        if active is not None:
            self.client, self.run_id = mlflow.MlflowClient(), active.info.run_id
        else:
            self.client = _client(self.root)
            tags = {**_run_tags(None, self.data_fingerprint), "device": str(state.device)}
            experiment_id = _experiment_id(self.client, self.experiment, self.root)
            run = self.client.create_run(experiment_id, tags=tags, run_name=self.name)
            self.run_id, self.own_run = run.info.run_id, True
        logged = self.client.get_run(self.run_id).data.params
        config = _params(state.config.to_dict(), self.data_fingerprint)
        for key, value in config.items():
            if key not in logged:  # MLflow refuses to change a logged param
                self.client.log_param(self.run_id, key, value)

    def on_epoch_end(self, state) -> None:
        """Log the epoch's finite metrics at step=epoch (a warning names the others)."""
        if self.client is None or self.run_id is None:
            return
        from mlflow.entities import Metric

        renamed = {"seconds": "epoch_seconds"}
        values = {renamed.get(k, k): v for k, v in state.epoch_metrics.items() if k != "epoch"}
        kept, skipped = _finite(values)
        if skipped:
            warnings.warn(f"epoch {state.epoch}: not logged: {', '.join(skipped)}.", stacklevel=2)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, state.epoch) for k, v in kept.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, state) -> None:
        """Log the weights (with `log_weights`) and end the run this callback opened."""
        if self.client is None or self.run_id is None:
            return
        if self.log_weights:
            with tempfile.TemporaryDirectory(prefix="dlnb-track-") as tmp:
                save_model(tmp, state.model, {"config": state.config.to_dict()})
                self.client.log_artifacts(self.run_id, tmp, "model")
        if self.own_run:
            self.client.set_terminated(self.run_id, "FINISHED")


def log_comparison(
    rows: list[dict], experiment: str = "dlnb", root: str | Path | None = None, **params: Any
) -> str:
    """Log a tabular comparison: a parent run (`params`) with one nested run per result row
    (model, seed, n_train, its hyperparameters as params, its scores as metrics); the parent's id."""
    import mlflow

    name = f"compare {rows[0]['dataset']}" if rows else "compare"
    with start_run(name, experiment=experiment, root=root, params=params) as parent:
        for row in rows:
            hyper = json.loads(row.get("hyperparameters") or "{}")
            keys = ("dataset", "task", "model", "seed", "n_train")
            run_params = {**{k: row[k] for k in keys if k in row}, **hyper}
            numbers = {k: v for k, v in row.items() if k not in keys and k != "hyperparameters"}
            child = f"{row.get('model')} seed={row.get('seed')} n={row.get('n_train')}"
            with start_run(child, experiment=experiment, params=run_params, nested=True):
                kept, _ = _finite(numbers)  # a tree count of a network is NaN: not a metric
                mlflow.log_metrics(kept)
        return parent.info.run_id
