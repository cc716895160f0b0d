"""What a registered classifier is good for (dlnb.lifecycle.competence): the card, the inspection
and the served labels state the base rate, each class's recall, and whether to use the labels or
only the ranking."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from dlnb.lifecycle import competence
from dlnb.train.card import ModelCard
from dlnb.train.saving import ModelInspection

CLASSES = ("rating < 7", "rating >= 7")
TEST = {"name": "films test split (seed 0)", "size": 800, "fingerprint": "997e779e25295872"}


def _model(recall: tuple[float, float], accuracy: float, auc: float) -> SimpleNamespace:
    per_class = pd.DataFrame(
        {"precision": [0.8, 0.6], "recall": list(recall), "support": [624, 176]},
        index=pd.Index(CLASSES),
    )
    summary = {"accuracy": accuracy, "macro_f1": 0.57, "roc_auc": auc, "pr_auc": 0.42}
    return SimpleNamespace(
        report=SimpleNamespace(per_class=per_class, summary=summary), about={"test_set": TEST}
    )


def test_a_card_of_a_model_that_mostly_answers_the_majority_says_so_and_offers_its_ranking():
    fields = competence.card_fields(
        _model((0.97, 0.17), 0.791, 0.694), {"name": "movies"}, "Teaching.", ["Old films only."]
    )
    metrics = {m["metric"]: m["value"] for m in fields["metrics"]}
    assert metrics["majority rate ('rating < 7')"] == 0.78 and metrics["accuracy"] == 0.791
    assert metrics["recall of 'rating >= 7'"] == 0.17 and "macro_f1" not in metrics
    assert all(m["test_set"] == TEST for m in fields["metrics"])
    limits = fields["limitations"]
    assert limits[0] == "Old films only."
    assert "Base rate: 78.0% 'rating < 7', 22.0% 'rating >= 7' among its 800 test rows" in limits[1]
    assert "right 0.780 of the time; the model's labels are right 0.791 (+0.011)" in limits[1]
    assert "'rating < 7' 0.97, 'rating >= 7' 0.17: the labels find few of the" in limits[2]
    assert limits[3].startswith("What it offers is a ranking: ROC AUC 0.694")
    ModelCard(name="m", **fields)  # a valid card: intended use and limitations present


def test_a_competent_model_is_said_to_help_with_its_labels_and_a_ranker_at_chance_is_not():
    good = competence.card_fields(_model((0.9, 0.8), 0.88, 0.93), {}, "Use.", ["Limit."])
    assert "every class is mostly found" in good["limitations"][2]
    assert "its labels and its ranking both help" in good["limitations"][3]
    weak = competence.card_fields(_model((0.99, 0.02), 0.78, 0.52), {}, "Use.", ["Limit."])
    assert "it barely ranks rows either" in weak["limitations"][3]


def test_served_labels_are_judged_against_the_base_rate_and_per_class_recall():
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.25).astype(int)
    score = np.clip(0.2 + 0.25 * y + rng.normal(0, 0.1, 1000), 0, 1)  # ranks well, rarely > 0.5
    text = competence.served_summary(y, np.c_[1 - score, score], CLASSES, "unseen films")
    assert text.startswith("**What these labels are worth.** Base rate: ")
    assert "among these 1,000 unseen films" in text
    assert f"{1 - y.mean():.1%} 'rating < 7', {y.mean():.1%} 'rating >= 7'" in text
    assert "the labels find few of the 'rating >= 7' rows" in text
    assert "What it offers is a ranking: ROC AUC 0.9" in text


def test_an_inspection_names_its_test_set_once(tmp_path):
    folder = tmp_path / "registry" / "v0001"
    rows = [
        {"metric": m, "value": v, "test_set": TEST}
        for m, v in (("accuracy", 0.7913), ("roc_auc", 0.6942))
    ]
    card = {"name": "mlp on films", "metrics": rows, "content_hash": "4a8a4b8047de9e27bb69"}
    meta = {"kind": "dlnb.tabular", "classes": list(CLASSES)}
    text = competence.inspection_text(
        ModelInspection(Path(folder), {"dlnb.json": 97903}, meta, card, [])
    )
    assert text.splitlines()[0] == "registry/v0001: dlnb.json (97,903 bytes)"
    assert text.count("fingerprint `997e779e25295872`") == 1
    assert "accuracy 0.7913; roc_auc 0.6942" in text
    assert text.endswith("content hash verified: 4a8a4b8047de9e27...")
    broken = competence.inspection_text(
        ModelInspection(Path(folder), {}, meta, card, ["dlnb.json differs"])
    )
    assert "MISMATCH: dlnb.json differs" in broken and "verified" not in broken
