"""One training epoch: accumulation groups, what the strategy is asked for, the epoch's metrics."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlnb.models import MLP
from dlnb.train.callbacks import Callback
from dlnb.train.config import TrainConfig, TrainState, make_optimizer
from dlnb.train.distributed import SingleProcess
from dlnb.train.epoch import Run, train_epoch
from dlnb.train.history import History
from tests.train.helpers import toy_data

pytestmark = pytest.mark.usefixtures("single_thread")


class RecordingStrategy(SingleProcess):
    """One process, recording which micro-batches skip the gradient sync and what is reduced."""

    def __init__(self):
        super().__init__()
        self.no_sync_batches: list[int] = []
        self.reduced: list[dict] = []
        self.state: TrainState | None = None

    def no_sync(self, wrapped):
        assert self.state is not None
        self.no_sync_batches.append(self.state.batch)
        return super().no_sync(wrapped)

    def reduce_sum(self, values):
        self.reduced.append(dict(values))
        return super().reduce_sum(values)


class BatchLosses(Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_batch_end(self, state):
        self.losses.append(state.last_loss)


def test_an_epoch_steps_once_per_accumulation_group_and_averages_over_examples():
    x, y, _, _ = toy_data(n=20)  # batches of 4: 5 batches, groups [1, 2], [3, 4], [5]
    model = MLP(8, hidden=(16,), out_features=3)
    config = TrainConfig(grad_accum=2, device="cpu", progress=False)
    state = TrainState(
        model=model,
        optimizer=make_optimizer(model, config),
        config=config,
        device=torch.device("cpu"),
        history=History(),
        train_loader=DataLoader(TensorDataset(x, y), batch_size=4),
        batches_per_epoch=5,
    )
    strategy, losses = RecordingStrategy(), BatchLosses()
    strategy.state = state
    run = Run(state, strategy, [losses], None, model, model, model, amp_dtype=None)
    before = [p.detach().clone() for p in model.parameters()]

    metrics = train_epoch(run)

    assert state.step == 3 and state.batch == 5
    assert strategy.no_sync_batches == [1, 3]  # the last micro-batch of each group syncs
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    (totals,) = strategy.reduced
    assert totals["seen"] == 20 and 0 <= totals["correct"] <= 20
    assert metrics["train_loss"] == pytest.approx(sum(losses.losses) * 4 / 20)
    assert metrics["train_accuracy"] == totals["correct"] / 20
