"""Dynamic batching for the inference service: queued requests grouped into one model call."""

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dlnb.deploy.export import NumpyFn


class Batcher:
    """Queues requests and runs them through the model in batches on one worker thread."""

    def __init__(
        self,
        fn: NumpyFn,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] = lambda rows, seconds: None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}.")
        self.fn, self.max_batch_size, self.max_wait_s, self.on_batch = (
            fn,
            max_batch_size,
            max_wait_s,
            on_batch,
        )
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="dlnb-inference")
        self._batch: list = []  # the requests being collected or run
        self._carry = None  # a request that did not fit in the last batch
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop, fail whatever has not been answered, and release the worker thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        waiting = self._batch + ([self._carry] if self._carry else [])
        while not self.queue.empty():
            waiting.append(self.queue.get_nowait())
        _fail(waiting, RuntimeError("The service is shutting down."))
        self.executor.shutdown(wait=True)

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Queue one request's samples and wait for their outputs."""
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((x, fut))
        return await fut

    async def _collect(self) -> None:
        """Fill `self._batch` with queued requests: up to `max_batch_size` samples, waiting at most
        `max_wait_s` after the first; a request that would overflow the batch waits for the next."""
        loop = asyncio.get_running_loop()
        self._batch = [self._carry or await self.queue.get()]
        self._carry = None
        rows = len(self._batch[0][0])
        deadline = loop.time() + self.max_wait_s
        while rows < self.max_batch_size:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if rows + len(item[0]) > self.max_batch_size:
                self._carry = item
                break
            self._batch.append(item)
            rows += len(item[0])

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._collect()
            items = self._batch
            x = np.concatenate([x for x, _ in items]) if len(items) > 1 else items[0][0]
            t0 = time.perf_counter()
            try:
                out = await loop.run_in_executor(self.executor, self.fn, x)
                if len(out) != len(x):
                    raise ValueError(
                        f"The model returned {len(out)} rows for a batch of {len(x)} samples."
                    )
            except Exception as e:  # the model failed: every request of this batch gets the error
                _fail(items, e)
                self._batch = []
                continue
            self.on_batch(len(x), time.perf_counter() - t0)
            start = 0
            for xi, fut in items:
                if not fut.done():  # a client that went away leaves a cancelled future
                    fut.set_result(out[start : start + len(xi)])
                start += len(xi)
            self._batch = []


def _fail(items: list, error: Exception) -> None:
    """Answer every waiting request of `items` with `error`."""
    for _, fut in items:
        if not fut.done():
            fut.set_exception(error)
