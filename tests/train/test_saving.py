"""Saved models: safetensors weights, a JSON that pins their hash, a model card pinned to both by a
content hash, clear errors on a mismatch."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dlnb.train.saving import (
    CARD,
    META,
    WEIGHTS,
    ModelCardMismatch,
    content_hash,
    inspect_model,
    load_model_files,
    load_weights_into,
    save_model,
)


def test_weights_and_metadata_round_trip(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    save_model(tmp_path, model, {"classes": ["a", "b"]})
    state, meta = load_model_files(tmp_path)
    assert meta["classes"] == ["a", "b"] and meta["shapes"]["0.weight"] == [4, 3]
    fresh = load_weights_into(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), state)
    x = torch.randn(5, 3)
    assert torch.equal(fresh(x), model(x))
    assert json.loads((tmp_path / META).read_text())["weights"] == WEIGHTS


def test_altered_weights_and_other_shapes_are_refused(tmp_path):
    save_model(tmp_path, nn.Linear(3, 2), {})
    state, _ = load_model_files(tmp_path)
    with pytest.raises(ValueError, match=r"other shapes \['weight \(2, 3\) vs \(2, 4\)"):
        load_weights_into(nn.Linear(4, 2), state)
    with pytest.raises(ValueError, match=r"missing \['0.bias'"):
        load_weights_into(nn.Sequential(nn.Linear(3, 2)), state)
    data = bytearray((tmp_path / WEIGHTS).read_bytes())
    data[-1] ^= 1
    (tmp_path / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_model_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="no saved dlnb model"):
        load_model_files(tmp_path / "empty")


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _card() -> dict:
    import pandas as pd

    from dlnb.train.card import metrics_on

    audit = pd.DataFrame({"accuracy": [0.9, 0.8], "n": [60, 40]}, index=pd.Index(["a", "b"]))
    audit.index.name = "group"
    return {
        "name": "tiny",
        "data": {"name": "toy", "fingerprint": {"train": {"sha256": "ab12"}}},
        "metrics": metrics_on({"accuracy": 0.85}, "toy test", 100, "cd34"),
        "intended_use": "Tests only.",
        "limitations": ["Knows nothing."],
        "bias_audit": audit,
    }


def test_a_card_is_written_pinned_to_weights_and_meta_and_survives_the_round_trip(tmp_path):
    from dlnb.train.card import ModelCard

    save_model(tmp_path, _net(), {"classes": ["a", "b"]}, card=_card())
    assert {CARD, "model_card.md", WEIGHTS, META} <= {p.name for p in tmp_path.iterdir()}
    state, meta = load_model_files(tmp_path)  # checks the content hash
    card = ModelCard.read(tmp_path)
    fields = json.loads((tmp_path / CARD).read_text())
    assert card.content_hash == content_hash(tmp_path / WEIGHTS, meta, fields)
    assert card.content_hash != content_hash(tmp_path / WEIGHTS, meta)  # the card's fields count
    assert card.artefacts[WEIGHTS] == meta["sha256"] and META in card.artefacts
    assert card.metrics[0]["test_set"] == {"name": "toy test", "size": 100, "fingerprint": "cd34"}
    assert card.bias_audit == [
        {"group": "a", "accuracy": 0.9, "n": 60},
        {"group": "b", "accuracy": 0.8, "n": 40},
    ]
    assert set(card.versions) == {"dlnb", "torch", "safetensors", "numpy"}
    assert ModelCard.read(tmp_path) == card and "0.85" in (tmp_path / "model_card.md").read_text()
    seen = inspect_model(tmp_path)
    assert seen.verified and "content hash verified" in str(seen) and "accuracy" in str(seen)


def test_an_incomplete_card_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="intended use"):
        save_model(tmp_path / "m", _net(), {}, card={"limitations": ["x"]})
    assert not (tmp_path / "m").exists()


def test_the_content_hash_covers_the_weights_bytes_and_the_canonical_meta(tmp_path):
    save_model(tmp_path, _net(), {"classes": ["a", "b"]})
    meta = json.loads((tmp_path / META).read_text())
    digest = content_hash(tmp_path / WEIGHTS, meta)
    assert digest == content_hash(tmp_path / WEIGHTS, json.loads(json.dumps(meta, indent=4)))
    assert digest != content_hash(tmp_path / WEIGHTS, {**meta, "classes": ["b", "a"]})
    (tmp_path / "other.bin").write_bytes((tmp_path / WEIGHTS).read_bytes() + b"\0")
    assert digest != content_hash(tmp_path / "other.bin", meta)


def _flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def test_a_card_that_does_not_match_its_files_is_refused_naming_the_file(tmp_path):
    flipped, edited, swapped, forged = (tmp_path / n for n in ("flip", "edit", "swap", "forge"))
    for folder in (flipped, edited, swapped, forged):
        save_model(folder, _net(), {"classes": ["a", "b"]}, card=_card())
    _flip_last_byte(flipped / WEIGHTS)
    with pytest.raises(ModelCardMismatch, match=rf"{WEIGHTS} differs from the weights") as e:
        load_model_files(flipped)
    assert "inspect_model" in str(e.value) and "Save the model again" in str(e.value)
    assert isinstance(e.value, ValueError) and "dlnb.json differs" not in str(e.value)
    meta = json.loads((edited / META).read_text())
    (edited / META).write_text(json.dumps({**meta, "classes": ["cat", "dog"]}))
    with pytest.raises(ModelCardMismatch, match=rf"{META} differs from the metadata") as e:
        load_model_files(edited)
    assert f"{WEIGHTS} differs" not in str(e.value)
    save_model(tmp_path / "other", _net(1), {"classes": ["x", "y"]}, card=_card())
    (swapped / CARD).write_text((tmp_path / "other" / CARD).read_text())
    with pytest.raises(ModelCardMismatch, match="may belong to another model"):
        load_model_files(swapped)
    card = json.loads((forged / CARD).read_text())
    (forged / CARD).write_text(json.dumps({**card, "content_hash": "0" * 64}))
    with pytest.raises(ModelCardMismatch, match="was edited after saving"):
        load_model_files(forged)
    typed = tmp_path / "typed"  # a better number typed into the card by hand
    save_model(typed, _net(), {"classes": ["a", "b"]}, card=_card())
    card = json.loads((typed / CARD).read_text())
    card["metrics"][0]["value"] = 0.999
    (typed / CARD).write_text(json.dumps(card))
    with pytest.raises(ModelCardMismatch, match="was edited after saving") as e:
        load_model_files(typed)
    assert f"{WEIGHTS} differs" not in str(e.value) and f"{META} differs" not in str(e.value)
    seen = inspect_model(swapped)
    assert not seen.verified and str(seen).count("MISMATCH") == 3


def test_saves_without_a_card_still_load_and_say_so(tmp_path):
    save_model(tmp_path, _net(), {"classes": ["a", "b"]}, card=_card())
    save_model(tmp_path, _net(), {"classes": ["a", "b"]})  # the earlier card would not match
    assert not (tmp_path / CARD).exists() and not (tmp_path / "model_card.md").exists()
    load_model_files(tmp_path)
    seen = inspect_model(tmp_path)
    assert seen.card is None and not seen.verified and "no model card: saved without" in str(seen)
    save_model(tmp_path / "lost", _net(), {}, card=_card())
    (tmp_path / "lost" / CARD).unlink()
    with pytest.warns(UserWarning, match="saved with a model card, but model_card.json is missing"):
        load_model_files(tmp_path / "lost")
    assert "saved with one, but model_card.json is missing" in str(inspect_model(tmp_path / "lost"))
    assert "no saved dlnb model" in str(inspect_model(tmp_path / "nothing-here"))
