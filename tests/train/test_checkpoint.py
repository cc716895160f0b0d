"""Checkpoints: atomic writes, `weights_only` reads, and a `TrainState` restored from one."""

import os
import stat
import zipfile
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

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


# --- issue 15 item 9: what a resume may change, orphaned temporary files, altered bytes ------------


def test_check_resumable_names_each_change_and_how_to_start_over(tmp_path):
    from dlnb.train.checkpoint import ResumeMismatchError, check_resumable

    config = TrainConfig(epochs=2, lr=1e-3)
    data = {"train": {"examples": 64, "batch_size": 16, "sha256": "a"}}
    ckpt = {"config": config.to_dict(), "data": data}
    check_resumable(ckpt, TrainConfig(epochs=2, lr=1e-3, progress=False, device="cpu"), data, "p")
    check_resumable({"config": config.to_dict()}, config, data, "p")  # written before fingerprints
    check_resumable(ckpt, TrainConfig(epochs=5, lr=1e-3), data, "p")  # no schedule: may extend
    with pytest.raises(ResumeMismatchError) as err:
        check_resumable(ckpt, TrainConfig(epochs=4, lr=0.5, scheduler="onecycle"), data, "last.pt")
    message = str(err.value)
    assert "Checkpoint last.pt" in message and "lr 0.001 -> 0.5" in message
    assert "epochs 2 -> 4" in message and "scheduler None -> 'onecycle'" in message
    assert "resume=False" in message and "another checkpoint_dir" in message
    cycle = {"config": TrainConfig(epochs=2, scheduler="onecycle").to_dict(), "data": data}
    with pytest.raises(ResumeMismatchError, match="epochs 2 -> 4"):  # crashed in epoch 3 before
        check_resumable(cycle, TrainConfig(epochs=4, scheduler="onecycle"), data, "last.pt")
    other = {"train": {"examples": 64, "batch_size": 16, "sha256": "b"}}
    with pytest.raises(ResumeMismatchError, match="train data .* -> .*'b'"):
        check_resumable(ckpt, config, other, "last.pt")


def _loader(x, y, **kwargs):
    return SimpleNamespace(train=DataLoader(TensorDataset(x, y), batch_size=8, **kwargs))


def test_data_fingerprint_sees_other_data_but_not_seeded_randomness():
    from dlnb.data.loaders import make_loaders
    from dlnb.train.checkpoint import data_fingerprint

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.arange(40) % 2
    a = data_fingerprint(_loader(x, y, shuffle=True))
    assert a == data_fingerprint(_loader(x.clone(), y.clone()))
    assert a["train"]["examples"] == 40 and a["train"]["batch_size"] == 8
    assert a != data_fingerprint(_loader(x + 1, y))
    assert a != data_fingerprint(_loader(x[:39], y[:39]))
    images = torch.randn(32, 1, 8, 8, generator=g)
    labels = torch.arange(32) % 2
    before = torch.random.get_rng_state()

    def noise(image):
        return image + torch.randn_like(image)  # a random augmentation, drawn from torch's RNG

    augmented = [
        data_fingerprint(make_loaders(images, labels, batch_size=8, train_transform=noise))
        for _ in range(2)
    ]
    assert augmented[0] == augmented[1] and torch.equal(torch.random.get_rng_state(), before)
    resident = make_loaders(images, labels, batch_size=8, device="cpu", translate=2)
    assert data_fingerprint(resident)["train"]["examples"] == len(resident.train.y)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from zip(x, y, strict=True)

    streamed = data_fingerprint(SimpleNamespace(train=DataLoader(Stream(), batch_size=8)))
    assert streamed["train"]["examples"] is None  # not indexable: nothing sampled, no error


def test_remove_orphans_deletes_only_temporary_checkpoints(tmp_path):
    from dlnb.train.checkpoint import remove_orphans

    for name in ("last.pt", "tmpab12.pt.tmp", "notes.tmp"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_orphans(tmp_path) == [tmp_path / "tmpab12.pt.tmp"]
    assert leftovers(tmp_path) == ["last.pt", "notes.tmp"]
    assert remove_orphans(tmp_path / "missing") == []


def test_a_flipped_byte_is_detected_instead_of_loaded(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", {"w": torch.arange(1000, dtype=torch.float32)})
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename)  # the tensor's bytes
    blob[info.header_offset + 30 + len(info.filename) + len(info.extra) + 100] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert not torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(1000.0))
    with pytest.raises(RuntimeError, match="fails its CRC check") as err:
        load_checkpoint(path)
    assert f"Checkpoint {path} could not be read" in str(err.value)


def test_data_fingerprint_hashes_a_table_without_categorical_columns():
    from dlnb.train.checkpoint import data_fingerprint

    numeric, no_categoricals = torch.randn(20, 3), torch.zeros(20, 0, dtype=torch.long)
    y = torch.arange(20) % 2
    loaders = SimpleNamespace(train=DataLoader(TensorDataset(numeric, no_categoricals, y)))
    fingerprint = data_fingerprint(loaders)  # each row's empty tensor used to fail to hash
    assert fingerprint["train"]["examples"] == 20
    other = SimpleNamespace(train=DataLoader(TensorDataset(numeric + 1, no_categoricals, y)))
    assert data_fingerprint(other) != fingerprint
