"""What a registered classifier is good for, said where people meet it: on its model card, when
its folder is inspected, and beside the labels it serves.

Accuracy alone flatters a classifier on imbalanced data: a model that almost always answers the
majority class scores close to the majority rate and misses most of the other class. So the
card gets the majority rate and each class's recall beside the accuracy, and says whether the
model's value is its labels or its ranking (ROC AUC); `served_summary` says the same of the
labels a service returned, and `inspection_text` shows a saved folder with its test set once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlnb.train.card import describe_test_set, metrics_on
from dlnb.train.saving import ModelInspection

__all__ = ["card_fields", "inspection_text", "served_summary"]

RANKING = ("roc_auc", "pr_auc")  # of a report's summary, on the card after accuracy and recall


def _competence(
    accuracy: float,
    recall: Mapping[str, float],
    shares: Mapping[str, float],
    auc: float | None,
    rows: str,
) -> list[str]:
    """Three sentences: the base rate and accuracy against the majority rate, recall per class,
    and whether the labels or only the ranking are worth using."""
    name = max(shares, key=lambda c: shares[c])
    rate = shares[name]
    split = ", ".join(f"{share:.1%} '{c}'" for c, share in shares.items())
    lines = [
        f"Base rate: {split} among {rows}. Always answering '{name}' is right {rate:.3f} of the "
        f"time; the model's labels are right {accuracy:.3f} ({accuracy - rate:+.3f})."
    ]
    shown = ", ".join(f"'{c}' {r:.2f}" for c, r in recall.items())
    weakest = min(recall, key=lambda c: recall[c])
    found = (
        f"the labels find few of the '{weakest}' rows"
        if recall[weakest] < 0.5
        else "every class is mostly found"
    )
    lines.append(f"Recall per class at the 0.5 threshold: {shown}: {found}.")
    if auc is None:
        return lines
    if auc < 0.6:
        lines.append(f"Its ROC AUC is {auc:.3f} (0.5 = chance): it barely ranks rows either.")
    elif recall[weakest] < 0.5:
        lines.append(
            f"What it offers is a ranking: ROC AUC {auc:.3f} (0.5 = chance). Sort rows by the "
            f"probability of '{weakest}' and choose the threshold your use needs, rather than "
            "reading its label."
        )
    else:
        lines.append(f"ROC AUC {auc:.3f} (0.5 = chance): its labels and its ranking both help.")
    return lines


def card_fields(
    model: Any, data: Mapping[str, Any], intended_use: str, limitations: Sequence[str]
) -> dict[str, Any]:
    """Model-card fields for `model.save(folder, card=...)` of a classifier fitted by
    `tabular.fit_table`: its test accuracy beside the majority rate and each class's recall,
    ROC AUC and PR AUC (all on its test split), and, after the given `limitations`, what
    accuracy hides and whether its labels or its ranking are what it offers."""
    report, test = model.report, model.about["test_set"]
    recall = {str(c): float(r) for c, r in report.per_class["recall"].items()}
    support = report.per_class["support"].astype(float)
    shares = {str(c): float(n / support.sum()) for c, n in support.items()}
    majority = max(shares, key=lambda c: shares[c])
    values = {
        "accuracy": report.summary["accuracy"],
        f"majority rate ('{majority}')": shares[majority],
    }
    values |= {f"recall of '{c}'": r for c, r in recall.items()}
    values |= {k: report.summary[k] for k in RANKING if k in report.summary}
    rows = f"its {int(support.sum()):,} test rows"
    competence = _competence(
        report.summary["accuracy"], recall, shares, report.summary.get("roc_auc"), rows
    )
    return {
        "data": dict(data),
        "metrics": metrics_on(values, **test),
        "intended_use": intended_use,
        "limitations": [*limitations, *competence],
    }


def served_summary(
    labels: Sequence[int], probabilities: np.ndarray, classes: Sequence[str], kind: str
) -> str:
    """What the served answers (`probabilities`, one row per request) are worth on rows whose
    true `labels` are known ("unseen films of the training era": `kind`): the base rate, accuracy
    against the majority rate, each class's recall, and the ranking (ROC AUC)."""
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(labels, dtype=int), np.asarray(probabilities, dtype=float)
    predicted = p.argmax(1)
    counts = np.bincount(y, minlength=len(classes))
    shares = {str(c): float(counts[i] / counts.sum()) for i, c in enumerate(classes)}
    recall = {
        str(c): float((predicted[y == i] == i).mean()) if counts[i] else float("nan")
        for i, c in enumerate(classes)
    }
    auc = float(roc_auc_score(y, p[:, 1])) if len(classes) == 2 and len(set(y)) == 2 else None
    rows = f"these {len(y):,} {kind}"
    lines = _competence(float((predicted == y).mean()), recall, shares, auc, rows)
    return "**What these labels are worth.** " + " ".join(lines)


def inspection_text(inspection: ModelInspection) -> str:
    """A saved model's folder in a few lines: its files, kind and classes, the card's metrics
    grouped by test set (each test set named once), and whether the content hash verified."""
    folder = inspection.directory
    files = ", ".join(f"{name} ({size:,} bytes)" for name, size in inspection.files.items())
    lines = [f"{folder.parent.name}/{folder.name}: {files or 'no files'}"]
    if inspection.meta is not None:
        lines.append(
            f"kind {inspection.meta.get('kind')}, classes {inspection.meta.get('classes')}"
        )
    card = inspection.card or {}
    if card:
        lines.append(f"model card: {card.get('name')}")
    groups: dict[str, list[str]] = {}
    for row in card.get("metrics") or []:
        value = row.get("value")
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        groups.setdefault(describe_test_set(row.get("test_set")), []).append(
            f"{row.get('metric')} {shown}"
        )
    for test_set, metrics in groups.items():
        lines += [f"  on {test_set}:", f"    {'; '.join(metrics)}"]
    if inspection.verified:
        lines.append(f"content hash verified: {str(card.get('content_hash'))[:16]}...")
    lines += [f"MISMATCH: {p}" for p in inspection.problems]
    return "\n".join(lines)
