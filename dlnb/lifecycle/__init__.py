"""The model lifecycle: tracked experiments (MLflow), tuning (Optuna), versioned models with cards,
metric regression tests and retraining on drift.

Tracking, tuning and model cards are implemented beside training (`dlnb.train.tracking`,
`dlnb.train.tuning`, `dlnb.train.card`, `dlnb.train.saving`), so the areas can use them; this
is where notebooks and users call them from."""

from __future__ import annotations

from dlnb.lifecycle.competence import card_fields, inspection_text, served_summary
from dlnb.lifecycle.control import (
    RetrainComparison,
    retrain_gain,
    retraining_effects,
    window_scores,
)
from dlnb.lifecycle.registry import ModelRegistry, RegistryError
from dlnb.lifecycle.regression import (
    MetricCheck,
    MetricRegression,
    check_metrics,
)
from dlnb.lifecycle.retrain import (
    Decision,
    RetrainPolicy,
    decisions_table,
    init_state,
    replay,
    retrain_step,
    train_like,
)
from dlnb.lifecycle.story import (
    alerts_table,
    drift_summary,
    periods_summary,
    plot_drift_panels,
    reference_note,
    retrain_summary,
    study_summary,
    tamper_summary,
    tuning_summary,
)
from dlnb.train.card import metrics_on
from dlnb.train.saving import ModelCardMismatch, ModelInspection, inspect_model
from dlnb.train.tracking import (
    TrackingCallback,
    TrackingError,
    log_comparison,
    log_metrics,
    log_model,
    runs_table,
    start_run,
    tracking_uri,
)
from dlnb.train.tuning import (
    PruneOnValLoss,
    default_pruner,
    plot_study_history,
    study_history,
    tune,
)

__all__: list[str] = [
    "TrackingCallback",
    "TrackingError",
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
    "ModelCardMismatch",
    "ModelInspection",
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
    "train_like",
    "RetrainComparison",
    "retrain_gain",
    "retraining_effects",
    "window_scores",
    "card_fields",
    "inspection_text",
    "served_summary",
    "alerts_table",
    "reference_note",
    "drift_summary",
    "periods_summary",
    "plot_drift_panels",
    "retrain_summary",
    "study_summary",
    "tamper_summary",
    "tuning_summary",
]
