"""TrainConfig's checks, TrainState's epoch length, and the optimizer and schedule built from them."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlnb.models import MLP
from dlnb.train.callbacks import Callback
from dlnb.train.config import TrainConfig, batches_per_epoch, make_optimizer, make_scheduler
from dlnb.train.loop import fit
from tests.train.helpers import toy_data

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = {"device": "cpu", "progress": False}


# --- the config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("optimizer", "adam"),
        ("scheduler", "step"),
        ("loss", "hinge"),
        ("amp", "fp8"),
        ("epochs", 0),
        ("grad_accum", 0),
        ("lr", 0.0),
        ("label_smoothing", 1.0),
        ("grad_clip", -1.0),
        ("max_steps_per_epoch", 0),
    ],
)
def test_bad_config_values_are_clear_errors(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_to_dict_leaves_out_the_param_groups_callable_and_rebuilds_the_config():
    config = TrainConfig(epochs=2, lr=0.1, scheduler="cosine", param_groups=lambda m: [])
    values = config.to_dict()
    assert "param_groups" not in values and values["scheduler"] == "cosine"
    assert TrainConfig(**values) == TrainConfig(epochs=2, lr=0.1, scheduler="cosine")


# --- the optimizer and the schedule --------------------------------------------------------------


def test_make_optimizer_trains_only_trainable_parameters_unless_given_groups():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    adamw = make_optimizer(model, TrainConfig(lr=0.01, weight_decay=0.1))
    assert isinstance(adamw, torch.optim.AdamW)
    trained = adamw.param_groups[0]["params"]
    assert [id(p) for p in trained] == [id(p) for p in model[1].parameters()]
    assert (adamw.param_groups[0]["lr"], adamw.param_groups[0]["weight_decay"]) == (0.01, 0.1)
    sgd = make_optimizer(model, TrainConfig(optimizer="sgd", momentum=0.5))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5

    def groups(m):
        return [{"params": m[0].parameters(), "lr": 1e-4}, {"params": m[1].parameters()}]

    grouped = make_optimizer(model, TrainConfig(lr=1e-2, param_groups=groups))
    assert [g["lr"] for g in grouped.param_groups] == [1e-4, 1e-2]


def test_make_scheduler_spans_the_whole_run():
    model = nn.Linear(4, 2)
    optimizer = make_optimizer(model, TrainConfig())
    assert make_scheduler(optimizer, TrainConfig(), steps_per_epoch=5) is None
    onecycle = make_scheduler(optimizer, TrainConfig(epochs=3, scheduler="onecycle"), 5)
    assert isinstance(onecycle, torch.optim.lr_scheduler.OneCycleLR)
    assert onecycle.total_steps == 15
    cosine = make_scheduler(optimizer, TrainConfig(epochs=3, scheduler="cosine"), 0)
    assert isinstance(cosine, torch.optim.lr_scheduler.CosineAnnealingLR) and cosine.T_max == 1


def test_batches_per_epoch_stops_after_max_steps_worth_of_accumulation_groups():
    assert batches_per_epoch(range(10), TrainConfig()) == 10
    assert batches_per_epoch(range(10), TrainConfig(max_steps_per_epoch=2, grad_accum=3)) == 6
    assert batches_per_epoch(range(4), TrainConfig(max_steps_per_epoch=2, grad_accum=3)) == 4


# --- the state -----------------------------------------------------------------------------------


class Lengths(Callback):
    def on_fit_start(self, state):
        self.lengths = (state.batches_per_epoch, state.steps_per_epoch)
        self.total_steps = state.scheduler.total_steps

    def on_epoch_end(self, state):
        self.batches, self.steps = state.batch, state.step


@pytest.mark.parametrize(
    "max_steps, grad_accum, batches, steps",
    [(None, 1, 5, 5), (None, 2, 5, 3), (2, 2, 4, 2), (9, 2, 5, 3), (1, 1, 1, 1)],
)
def test_the_state_knows_the_batches_and_optimizer_steps_of_an_epoch(
    max_steps, grad_accum, batches, steps
):
    x, y, _, _ = toy_data(40)
    train = DataLoader(TensorDataset(x, y), batch_size=8)  # 5 batches
    lengths = Lengths()
    config = TrainConfig(
        epochs=2, grad_accum=grad_accum, max_steps_per_epoch=max_steps, scheduler="onecycle", **CPU
    )
    torch.manual_seed(0)
    fit(MLP(8, hidden=(32,), out_features=3), SimpleNamespace(train=train), config, [lengths])
    assert lengths.lengths == (batches, steps) and lengths.total_steps == 2 * steps
    assert (lengths.batches, lengths.steps) == (batches, 2 * steps)  # what the epochs really ran
