"""Dynamic batching for the inference service: queued requests grouped into one model call."""

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dlnb.deploy import NumpyFn


class Batcher:
    """Queues requests and runs them through the model in batches on one worker thread."""

    def __init__(self, fn: NumpyFn, max_batch_size: int, max_wait_s: float,
                 on_batch: Callable[[int, float], None] = lambda rows, seconds: None):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}.")
        self.fn, self.max_batch_size, self.max_wait_s, self.on_batch = fn, max_batch_size, max_wait_s, on_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="dlnb-inference")
        self._carry = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop, fail whatever is still queued, and release the worker thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self.queue.empty():
            _, fut = self.queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("The service is shutting down."))
        self.executor.shutdown(wait=True)

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Queue one request's samples and wait for their outputs."""
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((x, fut))
        return await fut

    async def _next_batch(self) -> list:
        """Take queued requests until `max_batch_size` samples or `max_wait_s` after the first one."""
        loop = asyncio.get_running_loop()
        items = [self._carry or await self.queue.get()]
        self._carry = None
        rows = len(items[0][0])
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
            items.append(item)
            rows += len(item[0])
        return items

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._next_batch()
            x = np.concatenate([x for x, _ in items]) if len(items) > 1 else items[0][0]
            t0 = time.perf_counter()
            try:
                out = await loop.run_in_executor(self.executor, self.fn, x)
            except Exception as e:  # the model failed: every waiting request gets the error
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.on_batch(len(x), time.perf_counter() - t0)
            start = 0
            for xi, fut in items:
                if not fut.done():  # a client that went away leaves a cancelled future
                    fut.set_result(out[start : start + len(xi)])
                start += len(xi)
