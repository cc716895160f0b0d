"""dlnb.train.lr_finder: the exponential sweep, its suggestion, and leaving the model untouched."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.models import MLP
from dlnb.train import lr_finder
from dlnb.train.config import TrainConfig
from dlnb.train.lr_finder import lr_find, plot_lr_find
from tests.train.helpers import assert_same_weights, toy_data

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = TrainConfig(device="cpu")


def setup(seed: int = 0):
    torch.manual_seed(seed)
    x, y, _, _ = toy_data(n=256)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    return MLP(8, hidden=(32,), out_features=3, dropout=0.2), loader


def test_the_sweep_is_exponential_and_finds_a_low_loss():
    model, loader = setup()
    sweep = lr_find(model, loader, CPU, start_lr=1e-5, end_lr=10.0, num_steps=60)
    lrs = np.array(sweep.lrs)
    assert lrs[0] == pytest.approx(1e-5)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (1e6) ** (1 / 59), rtol=1e-9)
    assert len(sweep.losses) == len(sweep.lrs)
    # a useful learning rate lowers the loss well below where the sweep started
    assert min(sweep.losses) < 0.8 * sweep.losses[0]
    best = sweep.lrs[int(np.argmin(sweep.losses))]
    assert sweep.suggestion == pytest.approx(best / 10)
    assert 1e-4 < sweep.suggestion < 1.0


def test_a_diverging_sweep_stops_early_and_keeps_only_finite_losses():
    model, loader = setup()
    sweep = lr_find(model, loader, CPU, start_lr=1e-3, end_lr=1e6, num_steps=80)
    assert sweep.stopped_early and len(sweep.lrs) < 80
    assert np.isfinite(sweep.losses).all()
    assert max(sweep.losses) <= 4.0 * min(sweep.losses)
    full = lr_find(model, loader, CPU, start_lr=1e-6, end_lr=1e-4, num_steps=20)
    assert not full.stopped_early and len(full.lrs) == 20  # the loader is cycled: 8 batches a pass


def test_the_model_and_optimizer_are_restored():
    model, loader = setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = next(iter(loader))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # the optimizer now holds momentum buffers
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    momentum = {k: v["momentum_buffer"].clone() for k, v in state["state"].items()}
    lr_find(model, loader, CPU, optimizer=optimizer, num_steps=30)
    assert_same_weights(model.state_dict(), weights)
    assert not model.training
    assert optimizer.param_groups[0]["lr"] == 0.05
    for k, buf in optimizer.state_dict()["state"].items():
        torch.testing.assert_close(buf["momentum_buffer"], momentum[k], rtol=0, atol=0)


def test_the_model_is_restored_when_a_batch_fails():
    model, _ = setup()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    bad = [(torch.randn(4, 8), torch.zeros(4, dtype=torch.long))] * 3 + [(torch.randn(4, 5), None)]
    with pytest.raises(ValueError, match="MLP expects 8 features"):
        lr_find(model, bad, CPU, num_steps=10)
    assert_same_weights(model.state_dict(), weights)


def test_bad_arguments_are_clear_errors():
    model, loader = setup()
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_find(model, loader, CPU, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        lr_find(model, loader, CPU, num_steps=1)
    with pytest.raises(ValueError, match="empty loader"):
        lr_find(model, [], CPU)


def test_a_one_shot_iterable_ends_the_sweep_after_one_pass():
    model, loader = setup()
    sweep = lr_find(model, iter(list(loader)), CPU, start_lr=1e-6, end_lr=1e-4, num_steps=20)
    assert len(sweep.lrs) == len(loader) == 8 and not sweep.stopped_early


def test_the_plot_marks_the_suggestion_on_a_log_axis():
    sweep = lr_finder.LRSweep([1e-4, 1e-3, 1e-2], [2.0, 1.0, 3.0], 1e-4, stopped_early=False)
    fig, ax = plot_lr_find(sweep)
    assert ax.get_xscale() == "log"
    line, marker = ax.get_lines()
    assert list(line.get_xdata()) == sweep.lrs and list(marker.get_xdata()) == [1e-4, 1e-4]
    assert "1.0e-04" in ax.get_title()
