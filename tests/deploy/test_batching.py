"""dlnb.deploy.batching: the Batcher groups requests into model calls and hands each its own rows."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from dlnb.deploy.batching import Batcher


def test_batcher_groups_requests_up_to_the_max_batch_size():
    sizes: list[int] = []

    def double(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return batch * 2

    async def scenario():
        batcher = Batcher(double, max_batch_size=8, max_wait_s=0.05)
        batcher.start()
        requests = [np.full((3 if i % 5 == 0 else 1, 2), i, dtype=np.float32) for i in range(40)]
        outs = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return requests, outs

    requests, outs = asyncio.run(scenario())
    for r, o in zip(requests, outs, strict=True):
        assert np.array_equal(o, r * 2)  # every request got its own rows back
    assert max(sizes) <= 8 and sum(sizes) == sum(len(r) for r in requests)
    assert len(sizes) < len(requests)
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(double, max_batch_size=0, max_wait_s=0.0)


def test_batcher_reports_a_model_that_drops_rows_and_fails_queued_requests_on_stop():
    async def scenario():
        batcher = Batcher(lambda batch: batch[:1], max_batch_size=4, max_wait_s=0.05)
        batcher.start()
        results = await asyncio.gather(
            *(batcher.submit(np.zeros((1, 2))) for _ in range(3)), return_exceptions=True
        )
        await batcher.stop()
        stopped = Batcher(lambda batch: batch, max_batch_size=4, max_wait_s=0.0)  # never started
        pending = asyncio.ensure_future(stopped.submit(np.zeros((1, 2))))
        await asyncio.sleep(0)
        await stopped.stop()
        return results, await asyncio.gather(pending, return_exceptions=True)

    results, (pending,) = asyncio.run(scenario())
    assert all(
        isinstance(r, ValueError) and "returned 1 rows for a batch of 3" in str(r) for r in results
    )
    assert isinstance(pending, RuntimeError) and "shutting down" in str(pending)
