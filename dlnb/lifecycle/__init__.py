"""The model lifecycle: tracked experiments (MLflow), tuning (Optuna), versioned models with cards, metric regression tests and retraining on drift."""

from __future__ import annotations

__all__: list[str] = []
