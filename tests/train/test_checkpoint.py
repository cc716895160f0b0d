"""Checkpoints: atomic writes, `weights_only` reads, and a `TrainState` restored from one."""

import os
import stat
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dlnb.models import MLP
from dlnb.train.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    restore,
    save_checkpoint,
    unwrap_model,
)
from dlnb.train.config import TrainConfig
from dlnb.train.history import History
from tests.train.helpers import assert_same_weights, failing_save, leftovers


def test_save_then_load_round_trips_tensors_with_weights_only(tmp_path):
    payload = {
        "model": {"w": torch.randn(3, 2), "steps": torch.tensor(7)},
        "history": [{"epoch": 1, "train_loss": 0.5}],
        "stop_reason": "",
        "scheduler": None,
    }
    path = save_checkpoint(tmp_path / "runs" / "last.pt", payload)  # makes the folder
    assert path == tmp_path / "runs" / "last.pt" and leftovers(path.parent) == ["last.pt"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # not mkstemp's private 0o600
    loaded = load_checkpoint(path)
    assert loaded.keys() == payload.keys()
    assert_same_weights(loaded["model"], payload["model"])
    assert loaded["history"] == payload["history"] and loaded["scheduler"] is None
    assert torch.load(path, weights_only=True)["stop_reason"] == ""
    save_checkpoint(path, {"epoch": 2})  # an existing file is replaced whole
    assert load_checkpoint(path) == {"epoch": 2} and leftovers(path.parent) == ["last.pt"]


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": SimpleNamespace(run="rm -rf /")}, path)
    with pytest.raises(RuntimeError, match="could not be read") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_a_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    good = path.read_bytes()
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == good and leftovers(tmp_path) == ["last.pt"]
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "new.pt", {"epoch": 1})
    assert leftovers(tmp_path) == ["last.pt"]


class Wrapper(nn.Module):
    """Holds a model as `.module`, as DistributedDataParallel does."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_unwrap_model_finds_the_plain_module():
    model = MLP(4, hidden=(8,), out_features=2)
    compiled = SimpleNamespace(_orig_mod=model)  # what torch.compile's wrapper exposes
    assert unwrap_model(model) is model
    assert unwrap_model(compiled) is model
    assert unwrap_model(Wrapper(model)) is model
    assert unwrap_model(Wrapper(compiled)) is model  # compile applied before DDP


def _state(seed: int) -> SimpleNamespace:
    torch.manual_seed(seed)
    model = MLP(4, hidden=(8,), out_features=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return SimpleNamespace(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10),
        scaler=None,
        config=TrainConfig(epochs=5),
        history=History(),
        epoch=0,
        step=0,
        stop=False,
        stop_reason="",
    )


class Counter:
    """A callback's state: a number it must remember across a resume."""

    def __init__(self, value=0):
        self.value = value

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_a_state_is_restored_from_its_saved_payload(tmp_path):
    state = _state(seed=0)
    state.model(torch.randn(6, 4)).sum().backward()
    state.optimizer.step()
    state.scheduler.step()
    state.epoch, state.step, state.stop, state.stop_reason = 2, 7, True, "done"
    state.history.records = [{"epoch": 1}, {"epoch": 2}]
    path = save_checkpoint(tmp_path / "last.pt", checkpoint_payload(state, [Counter(3)]))

    fresh, counter = _state(seed=1), Counter()
    restore(fresh, load_checkpoint(path), [counter])
    assert_same_weights(fresh.model.state_dict(), state.model.state_dict())
    saved, loaded = state.optimizer.state_dict(), fresh.optimizer.state_dict()
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert all(
            torch.equal(saved["state"][i][key], loaded["state"][i][key]) for i in saved["state"]
        )
    assert fresh.scheduler.state_dict() == state.scheduler.state_dict()
    assert (fresh.epoch, fresh.step, fresh.stop, fresh.stop_reason) == (2, 7, True, "done")
    assert fresh.history.records == state.history.records and counter.value == 3
    assert load_checkpoint(path)["config"]["epochs"] == 5
