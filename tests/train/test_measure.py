"""`measure_fit`: throughput, memory and accuracy of one run, on a device resolved once."""

import pytest
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders
from dlnb.models import MLP
from dlnb.train import loop
from dlnb.train.config import TrainConfig
from dlnb.train.measure import measure_fit
from tests.train.helpers import toy_data

pytestmark = pytest.mark.usefixtures("single_thread")


def test_measure_fit_reports_speed_memory_and_accuracy():
    x, y, xv, yv = toy_data()
    valid = DataLoader(TensorDataset(xv, yv), batch_size=16)
    loaders = Loaders(DataLoader(TensorDataset(x, y), batch_size=16), valid, valid)
    result = measure_fit(
        MLP(8, hidden=(8,), out_features=3),
        loaders,
        TrainConfig(epochs=2, device="cpu", progress=False),
    )
    assert result["images_per_s"] == pytest.approx(2 * 64 / result["seconds"])
    assert result["memory_mib"] > 0 and 0 <= result["valid_accuracy"] <= 1
    assert result["test_accuracy"] == result["valid_accuracy"]  # same data, same final weights


def test_measure_fit_resolves_the_device_once(monkeypatch):
    calls = []
    real = loop.pick_device
    monkeypatch.setattr(loop, "pick_device", lambda device: calls.append(device) or real(device))
    x, y, xv, yv = toy_data()
    valid = DataLoader(TensorDataset(xv, yv), batch_size=16)
    loaders = Loaders(DataLoader(TensorDataset(x, y), batch_size=16), valid, valid)
    measure_fit(
        MLP(8, hidden=(8,), out_features=3),
        loaders,
        TrainConfig(epochs=1, device="cpu", progress=False),
    )
    assert calls == ["cpu"]  # not again by fit, nor by evaluate
