"""Out-of-memory detection and `find_batch_size`, with a model that fails above a batch size."""

import copy

import pytest
import torch
from torch import nn

from dlnb.models import LeNet5
from dlnb.train.memory import _is_out_of_memory, find_batch_size
from tests.train.helpers import assert_same_weights

pytestmark = pytest.mark.usefixtures("single_thread")


class OutOfMemoryAbove(nn.Module):
    """A model that runs out of memory (as CUDA would) above `limit` examples per batch."""

    def __init__(self, limit, error=torch.OutOfMemoryError):
        super().__init__()
        self.norm, self.head = nn.BatchNorm1d(4), nn.Linear(4, 2)
        self.limit, self.error, self.tried = limit, error, []

    def forward(self, x):
        self.tried.append(len(x))
        x = self.norm(x)
        if len(x) > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.head(x)


def test_find_batch_size_halves_after_out_of_memory_and_restores_the_model(capsys):
    model = OutOfMemoryAbove(limit=100)
    before = copy.deepcopy(model.state_dict())
    size = find_batch_size(model, torch.randn(4), start=1024, device="cpu")
    assert size == 64
    assert model.tried == [1024, 512, 256, 128, 64]
    assert_same_weights(model.state_dict(), before)  # BatchNorm statistics put back
    assert all(p.grad is None for p in model.parameters())
    assert "batch size 128 does not fit" in capsys.readouterr().out


def test_find_batch_size_knows_cpu_allocator_failures_and_gives_up_clearly():
    model = OutOfMemoryAbove(limit=10, error=RuntimeError)  # message-only out-of-memory
    assert find_batch_size(model, torch.randn(4), start=40, device="cpu", verbose=False) == 10
    with pytest.raises(RuntimeError, match="Even batch size 2 does not fit"):
        find_batch_size(
            OutOfMemoryAbove(limit=1),
            torch.randn(4),
            start=8,
            min_size=2,
            device="cpu",
            verbose=False,
        )
    with pytest.raises(ValueError, match="LeNet5 expects"):  # other errors are not swallowed
        find_batch_size(LeNet5(), torch.randn(3, 28, 28), start=8, device="cpu")
    assert _is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not _is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.gpu
def test_find_batch_size_on_cuda():
    sample = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(0))
    big = find_batch_size(LeNet5(), sample, start=2**21, device="cuda", verbose=False)
    assert 1 <= big <= 2**21


def test_describe_batch_search_tells_a_limit_from_a_starting_value():
    from dlnb.train.memory import describe_batch_search

    limit = describe_batch_search(512, 2048, "cuda")
    assert "fits with at most 512 examples per batch (the search started at 2,048" in limit
    start = describe_batch_search(2048, 2048, "cpu")
    assert "returned its starting value, 2,048" in start and "this is not a limit" in start
    assert "On a CPU, RAM does not run out" in start
    assert "Start the search higher" in describe_batch_search(2048, 2048, "cuda")
