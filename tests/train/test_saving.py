"""Saved models: safetensors weights, a JSON that pins their hash, clear errors on a mismatch."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dlnb.train.saving import META, WEIGHTS, load_model_files, load_weights_into, save_model


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
