"""Classification reports (scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlnb.data.loaders import make_loaders
from dlnb.train.report import classification_report, report_from_probs


def test_the_report_matches_hand_counts_on_a_small_binary_case():
    y = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    report = report_from_probs(y, probs, ["ham", "spam"])
    spam = report.per_class.loc["spam"]
    assert spam["precision"] == 0.5 and spam["recall"] == 0.5 and spam["support"] == 2
    assert report.per_class.loc["ham", "recall"] == pytest.approx(2 / 3)
    assert report.summary["accuracy"] == pytest.approx(0.6)
    assert report.summary["roc_auc"] == pytest.approx(4 / 6)  # 4 of 6 (spam, ham) pairs ordered
    assert report.confusion.loc["ham", "spam"] == 1 and report.confusion.loc["spam", "ham"] == 1
    assert report.summary["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert "pr_auc" in report.summary and "<table" in report._repr_html_()


def test_multiclass_reports_have_no_binary_aucs_and_bad_shapes_are_named():
    y = np.array([0, 1, 2, 2])
    report = report_from_probs(y, np.eye(3)[[0, 1, 2, 1]])
    assert "roc_auc" not in report.summary and list(report.per_class.index) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="probabilities for every target"):
        report_from_probs(y, np.ones((3, 3)))
    with pytest.raises(ValueError, match="2 label names for 3 classes"):
        report_from_probs(y, np.eye(3)[y], ["a", "b"])


def test_classification_report_of_a_model_and_a_regression_refusal():
    x = torch.tensor([[2.0], [-2.0], [1.0], [-1.0]])
    y = torch.tensor([1, 0, 1, 1])
    model = nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        model.bias.zero_()
    loader = make_loaders(x, y, valid_fraction=0.0, batch_size=2).train
    report = classification_report(model, loader, ["no", "yes"])
    assert report.summary["accuracy"] == 0.75 and report.per_class.loc["yes", "recall"] == 2 / 3
    with pytest.raises(ValueError, match="regression"):
        classification_report(nn.Linear(1, 1), loader)
