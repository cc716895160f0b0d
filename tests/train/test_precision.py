"""Mixed precision: the autocast dtype each `amp` setting gives, and bf16 training on a CPU."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.data.loaders import Loaders
from dlnb.models import MLP
from dlnb.train.config import TrainConfig
from dlnb.train.loop import fit
from dlnb.train.precision import autocast, autocast_dtype
from tests.train.helpers import toy_data

pytestmark = pytest.mark.usefixtures("single_thread")


def test_mixed_precision_choices():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16' needs a CUDA GPU"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="amp='fp16'"):
        fit(
            MLP(8, hidden=(4,), out_features=3),
            Loaders(DataLoader(TensorDataset(*toy_data()[:2]), batch_size=16)),
            TrainConfig(amp="fp16", device="cpu"),
        )


def test_bf16_autocast_trains_on_the_cpu():
    x, y, _, _ = toy_data(n=96)
    loaders = Loaders(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True))
    torch.manual_seed(0)
    history = fit(
        MLP(8, hidden=(32,), out_features=3),
        loaders,
        TrainConfig(epochs=8, lr=1e-2, amp="bf16", device="cpu", progress=False),
    )
    assert history.records[-1]["train_loss"] < 0.6 * history.records[0]["train_loss"]
    assert history.records[-1]["train_accuracy"] > 0.8


def test_autocast_runs_in_the_dtype_given_and_is_off_without_one():
    cpu, a = torch.device("cpu"), torch.randn(4, 4)
    with autocast(cpu, torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(cpu, None):
        assert (a @ a).dtype == torch.float32
