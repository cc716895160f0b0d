"""One batch: moving it to the device, splitting it, calling the model, the loss, the hits; and
the tally of an epoch's batch losses."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlnb.train.config import NonFiniteLossError
from dlnb.train.step import (
    ExplosionGuard,
    LossExplodedError,
    LossTally,
    call_model,
    compute_loss,
    count_correct,
    optimizer_step,
    split_batch,
    to_device,
)

CPU = torch.device("cpu")


def test_to_device_moves_nested_tensors_and_keeps_containers():
    batch = {"ids": torch.ones(2, 3), "pair": (torch.zeros(2), [torch.ones(1)]), "name": "x"}
    moved = to_device(batch, CPU)
    assert set(moved) == {"ids", "pair", "name"} and moved["name"] == "x"
    assert type(moved["pair"]) is tuple and type(moved["pair"][1]) is list
    assert torch.equal(moved["ids"], batch["ids"]) and moved["pair"][1][0].device == CPU


def test_to_device_makes_only_4d_float_tensors_channels_last():
    images = torch.randn(2, 3, 4, 4)
    moved = to_device((images, torch.zeros(2, 3, 4, 4, dtype=torch.long)), CPU, channels_last=True)
    assert moved[0].is_contiguous(memory_format=torch.channels_last)
    assert not moved[0].is_contiguous() and torch.equal(moved[0], images)
    assert moved[1].is_contiguous()  # integer tensors keep their layout
    flat = to_device(torch.randn(2, 3), CPU, channels_last=True)
    assert flat.is_contiguous()
    assert not to_device(images, CPU).is_contiguous(memory_format=torch.channels_last)


def test_split_batch_takes_pairs_and_names_anything_else():
    x, y = torch.zeros(2, 3), torch.zeros(2)
    assert split_batch((x, y)) == (x, y) and split_batch([x, y]) == (x, y)
    with pytest.raises(TypeError, match="got tuple of length 3"):
        split_batch((x, y, y))
    with pytest.raises(TypeError, match="got dict. Make the dataset or collate_fn return"):
        split_batch({"x": x})


class Returns(nn.Module):
    """Returns whatever `wrap` makes of the sum of its inputs."""

    def __init__(self, wrap):
        super().__init__()
        self.wrap = wrap

    def forward(self, *args, **kwargs):
        return self.wrap(sum(args) + sum(kwargs.values()))


def test_call_model_passes_x_as_a_tensor_tuple_or_dict_and_finds_the_logits():
    a, b = torch.ones(2, 3), 2 * torch.ones(2, 3)
    plain = Returns(lambda out: out)
    assert torch.equal(call_model(plain, a), a)
    assert torch.equal(call_model(plain, (a, b)), a + b)
    assert torch.equal(call_model(plain, {"a": a, "b": b}), a + b)
    assert torch.equal(call_model(Returns(lambda out: SimpleNamespace(logits=out)), a), a)
    assert torch.equal(call_model(Returns(lambda out: {"logits": out}), [a, b]), a + b)


def test_compute_loss_matches_torch_for_each_loss():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    assert compute_loss(logits, labels, "cross_entropy") == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )
    assert compute_loss(logits, labels, "cross_entropy", label_smoothing=0.1) == pytest.approx(
        F.cross_entropy(logits, labels, label_smoothing=0.1).item()
    )
    out, target = torch.randn(6, 1, generator=g), torch.randn(6, generator=g)
    assert compute_loss(out, target, "mse") == pytest.approx(F.mse_loss(out[:, 0], target).item())
    bits = (target > 0).long()  # integer targets are cast
    assert compute_loss(out, bits, "bce") == pytest.approx(
        F.binary_cross_entropy_with_logits(out[:, 0], bits.float()).item()
    )
    half = compute_loss(logits.half(), labels, "cross_entropy")
    assert half.dtype == torch.float32  # the loss is computed in float32


def test_compute_loss_names_mismatched_shapes():
    with pytest.raises(
        ValueError, match=r"cross_entropy needs logits .* got \(4, 3\) and \(4, 3\)"
    ):
        compute_loss(torch.zeros(4, 3), torch.zeros(4, 3).long(), "cross_entropy")
    with pytest.raises(ValueError, match=r"cross_entropy needs .* got \(4, 3\) and \(5,\)"):
        compute_loss(torch.zeros(4, 3), torch.zeros(5).long(), "cross_entropy")
    with pytest.raises(
        ValueError, match=r"mse needs one output per target; got \(4, 2\) and \(4,\)"
    ):
        compute_loss(torch.zeros(4, 2), torch.zeros(4), "mse")


def test_count_correct_uses_argmax_or_the_sign_of_the_logit():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    correct = count_correct(logits, torch.tensor([0, 1, 1]), "cross_entropy")
    assert correct.dtype == torch.long and int(correct) == 2
    margins = torch.tensor([[1.5], [-0.5], [0.2], [-2.0]])
    assert int(count_correct(margins, torch.tensor([1.0, 0.0, 0.0, 1.0]), "bce")) == 2


def test_optimizer_step_clips_steps_and_zeroes_the_gradients():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    (model(torch.full((4, 3), 100.0)).sum() * 100).backward()
    optimizer_step(model, optimizer, grad_clip=0.5)
    assert model.weight.grad is None and model.bias.grad is None  # zeroed (set to None)
    step = (model.weight.detach() - before).norm()
    assert 0 < step <= 0.5 + 1e-6  # lr 1 x a gradient clipped to norm 0.5 (weights and bias)


def test_optimizer_step_without_clipping_is_a_plain_step():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()  # gradient of every weight is 1
    optimizer_step(model, optimizer)
    torch.testing.assert_close(model.weight.detach(), torch.full((1, 2), 0.9))


# --- issue 15 item 10: a loss that explodes while staying finite -------------------------------------


def _trips(losses, batches_per_epoch=100) -> int | None:
    """The batch (1-based) at which a fresh guard trips on `losses`, or None."""
    from dlnb.train.step import ExplosionGuard

    guard = ExplosionGuard()
    for i, loss in enumerate(losses, start=1):
        if guard.update(loss, batches_per_epoch):
            return i
    return None


def test_the_guard_trips_on_a_diverged_run_even_with_zero_loss_batches():
    # AdamW at lr 1e6 (the probe): ~1e12 with some batches at 0 (right, with huge logits).
    diverged = [1.6] + [0.0 if i % 3 == 0 else 1e12 for i in range(40)]
    assert _trips(diverged) == 21  # the start, then a full window of 20 mostly exploded batches
    assert _trips(diverged[:13], batches_per_epoch=12) == 13  # an epoch shorter than the window


def test_the_guard_lets_normal_runs_and_short_spikes_through():
    assert _trips([2.3 * 0.99**i for i in range(500)]) is None  # learning
    assert _trips([2.3] + [2.3e3] * 200) is None  # 1000x worse, but not 10^4x
    spikes = [2.3] + ([1e9] * 9 + [1.0] * 11) * 10  # 9 exploded batches out of each 20
    assert _trips(spikes) is None
    assert _trips([1e-6] + [5e-3] * 100) is None  # a near-zero start: the floor of 1 holds
    assert _trips([1e6 * 0.9**i for i in range(200)]) is None  # a large-scale regression loss
    assert _trips([1e6] + [2e10] * 30) == 21  # ... which still trips if it explodes


# --- the tally of an epoch's losses ----------------------------------------------------------------


def _state(batches_per_epoch: int = 10) -> SimpleNamespace:
    """The few TrainState fields a LossTally reads and writes."""
    return SimpleNamespace(
        epoch=2,
        batch=0,
        step=5,
        batches_per_epoch=batches_per_epoch,
        last_loss=float("nan"),
        config=SimpleNamespace(lr=0.1),
    )


def test_the_tally_reads_losses_once_per_group_and_weights_them_by_examples():
    tally, state = LossTally(ExplosionGuard(), sync_every=3), _state()
    for batch, (loss, size) in enumerate([(1.0, 2), (3.0, 2), (2.0, 4)], start=1):
        state.batch = batch
        tally.add(torch.tensor(loss), size, state)
        if batch < 3:  # still on the device: no sync yet
            assert len(tally.pending) == batch and tally.seen == 0
    assert tally.pending == [] and state.last_loss == 2.0
    assert (tally.loss_sum, tally.seen) == (1.0 * 2 + 3.0 * 2 + 2.0 * 4, 8)
    state.batch = 4
    tally.add(torch.tensor(5.0), 1, state)
    tally.flush(state)  # the end of the epoch reads what is left
    assert (tally.loss_sum, tally.seen, state.last_loss) == (21.0, 9, 5.0)


@pytest.mark.parametrize(
    "losses, error, where",
    [
        ([1.0, float("nan"), 1.0], NonFiniteLossError, "became nan at epoch 2, batch 2 "),
        ([1.0] + [1e6] * 4, LossExplodedError, "by epoch 2, batch 5: 4 of the last 4"),
    ],
)
def test_the_tally_names_the_batch_whose_loss_went_bad(losses, error, where):
    tally, state = LossTally(ExplosionGuard(window=4), sync_every=len(losses)), _state(4)
    with pytest.raises(error, match=where):
        for batch, loss in enumerate(losses, start=1):
            state.batch = batch
            tally.add(torch.tensor(loss), 1, state)
