"""What a practitioner reads after training a classifier: a scikit-learn classification report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlnb.train.loop import predict

__all__ = ["Report", "classification_report", "report_from_probs"]


@dataclass
class Report:
    """Per-class precision/recall/F1, macro and weighted averages, AUCs (binary) and the confusion."""

    per_class: pd.DataFrame
    summary: dict[str, float]
    confusion: pd.DataFrame

    def _repr_html_(self) -> str:
        lines = ", ".join(f"{k} {v:.4f}" for k, v in self.summary.items())
        return f"<p>{lines}</p>{self.per_class.round(4).to_html()}{self.confusion.to_html()}"


def report_from_probs(
    y: np.ndarray | Sequence[int], probs: np.ndarray, label_names: Sequence[str] | None = None
) -> Report:
    """A `Report` from integer targets and class probabilities (rows: examples), by scikit-learn."""
    from sklearn import metrics

    y, probs = np.asarray(y).astype(int), np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y) or len(y) == 0:
        raise ValueError(
            f"report_from_probs needs (examples, classes) probabilities for every target; got "
            f"{probs.shape} for {len(y)} targets."
        )
    labels = list(range(probs.shape[1]))
    names = [str(n) for n in label_names] if label_names is not None else list(map(str, labels))
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} label names for {len(labels)} classes.")
    predicted = probs.argmax(1)
    p, r, f, support = metrics.precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    per_class = pd.DataFrame(
        {"precision": p, "recall": r, "f1": f, "support": support}, index=pd.Index(names)
    )
    summary = {"accuracy": float(metrics.accuracy_score(y, predicted))}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = metrics.precision_recall_fscore_support(
            y, predicted, labels=labels, average=average, zero_division=0
        )
        summary.update({f"{average}_precision": ap, f"{average}_recall": ar, f"{average}_f1": af})
    if len(labels) == 2 and len(np.unique(y)) == 2:  # AUCs of the positive class (label 1)
        summary["roc_auc"] = float(metrics.roc_auc_score(y, probs[:, 1]))
        summary["pr_auc"] = float(metrics.average_precision_score(y, probs[:, 1]))
    confusion = pd.DataFrame(
        metrics.confusion_matrix(y, predicted, labels=labels),
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )
    return Report(per_class, {k: float(v) for k, v in summary.items()}, confusion)


def classification_report(
    model: nn.Module,
    loader,
    label_names: Sequence[str] | None = None,
    device: torch.device | None = None,
) -> Report:
    """The `Report` of a classifier (logits: examples x classes) over a loader of (x, y) batches."""
    logits, y = predict(model, loader, device)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(
            f"classification_report needs (examples, classes >= 2) logits; got {logits.shape}. "
            "A regression model has no classification report."
        )
    return report_from_probs(y, torch.softmax(torch.from_numpy(logits), 1).numpy(), label_names)
