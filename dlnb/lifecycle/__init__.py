"""The model lifecycle: tracked experiments (MLflow), tuning (Optuna), versioned models with cards, metric regression tests and retraining on drift."""

from __future__ import annotations

from dlnb.deploy.card import metrics_on
from dlnb.lifecycle.registry import ModelRegistry, RegistryError
from dlnb.lifecycle.regression import (
    MetricCheck,
    MetricRegression,
    check_metrics,
    is_higher_better,
    read_baseline,
    write_baseline,
)
from dlnb.lifecycle.retrain import (
    Decision,
    RetrainPolicy,
    decisions_table,
    init_state,
    replay,
    retrain_step,
    score_model,
    train_like,
)
from dlnb.lifecycle.tracking import (
    TrackingCallback,
    TrackingError,
    code_version,
    environment,
    log_comparison,
    log_metrics,
    log_model,
    runs_table,
    start_run,
    tracking_uri,
)
from dlnb.lifecycle.tuning import (
    PruneOnValLoss,
    default_pruner,
    plot_study_history,
    study_history,
    tune,
)
from dlnb.train.saving import ModelCardMismatch, ModelInspection, content_hash, inspect_model

__all__: list[str] = [
    "TrackingCallback",
    "TrackingError",
    "code_version",
    "environment",
    "log_comparison",
    "log_metrics",
    "log_model",
    "runs_table",
    "start_run",
    "tracking_uri",
    "PruneOnValLoss",
    "default_pruner",
    "plot_study_history",
    "study_history",
    "tune",
    "MetricCheck",
    "MetricRegression",
    "check_metrics",
    "is_higher_better",
    "read_baseline",
    "write_baseline",
    "ModelCardMismatch",
    "ModelInspection",
    "content_hash",
    "inspect_model",
    "metrics_on",
    "ModelRegistry",
    "RegistryError",
    "Decision",
    "RetrainPolicy",
    "decisions_table",
    "init_state",
    "replay",
    "retrain_step",
    "score_model",
    "train_like",
]
