"""Adaptive micro-batching: requests that arrive together share one predict call.

Each request is parsed and checked on its own before it gets here, so a batch holds only valid
rows and one caller's bad input can never fail another caller's rows. A single worker task
takes whatever is queued (up to ``max_rows``), runs ``predict`` in a worker thread so the event
loop keeps accepting and parsing, and hands each caller exactly its own slice of the result.

It is adaptive: a batch waits up to ``max_wait`` for more requests only while other requests are
being received and parsed (counted by the server as they arrive), so a lone client never pays
the wait,
and under load the requests that queue during one predict call form the next batch. Should a
batched call fail anyway, each request of the batch is retried alone, so the error reaches
only the request that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger("serving.batching")

Predict = Callable[[pd.DataFrame], np.ndarray]
Observe = Callable[[pd.DataFrame, np.ndarray], None]


def _nothing() -> None:
    return None


@dataclass
class _Item:
    frame: pd.DataFrame
    future: asyncio.Future[np.ndarray]


class MicroBatcher:
    def __init__(
        self,
        predict: Predict,
        max_wait_ms: float = 2.0,
        max_rows: int = 1024,
        observe: Observe | None = None,
    ) -> None:
        self._predict = predict
        self._observe = observe
        self.max_wait = max_wait_ms / 1000.0
        self.max_rows = max_rows
        # Requests received but not yet submitted (being read or parsed); the server counts them.
        self.arriving = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task[None] | None = None
        self._carry: _Item | None = None  # a request too big to join the last batch

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        leftovers = [self._carry] if self._carry is not None else []
        while not self._queue.empty():
            leftovers.append(self._queue.get_nowait())
        for item in leftovers:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def settle(self) -> None:
        """Wait until the metrics of every batch answered so far are recorded.

        The predict thread runs work in order, so a no-op passing through it comes after them.
        """
        with contextlib.suppress(RuntimeError):  # shut down: nothing is pending
            await asyncio.get_running_loop().run_in_executor(self._executor, _nothing)

    async def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """This frame's predictions, possibly computed together with other requests' rows."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(frame, future))
        return await future

    async def _collect(self) -> list[_Item]:
        loop = asyncio.get_running_loop()
        first, self._carry = self._carry, None
        batch = [first if first is not None else await self._queue.get()]
        rows = len(batch[0].frame)
        deadline = loop.time() + self.max_wait
        while rows < self.max_rows:
            if self._queue.empty():
                # Wait only for requests that are already being received and parsed.
                remaining = deadline - loop.time()
                if self.arriving <= 0 or remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if rows + len(item.frame) > self.max_rows:
                # Too big to join: it leads the next batch instead.
                self._carry = item
                break
            batch.append(item)
            rows += len(item.frame)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            batch = [item for item in batch if not item.future.done()]  # callers gone
            if not batch:
                continue
            try:
                frame, predictions, results = await loop.run_in_executor(
                    self._executor, self._predict_batch, batch
                )
            except Exception:
                log.exception("batched predict failed; retrying each request alone")
                for item in batch:
                    await self._predict_alone(item)
                continue
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
            self._observe_later(frame, predictions)

    async def _predict_alone(self, item: _Item) -> None:
        loop = asyncio.get_running_loop()
        try:
            frame, predictions, (result,) = await loop.run_in_executor(
                self._executor, self._predict_batch, [item]
            )
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)
        self._observe_later(frame, predictions)

    def _predict_batch(
        self, batch: list[_Item]
    ) -> tuple[pd.DataFrame, np.ndarray, list[np.ndarray]]:
        if len(batch) == 1:
            frame = batch[0].frame
        else:
            frame = pd.concat([item.frame for item in batch], ignore_index=True)
        predictions = np.asarray(self._predict(frame))
        if len(predictions) != len(frame):
            raise RuntimeError(f"the model returned {len(predictions)} rows for {len(frame)}")
        bounds = np.cumsum([0] + [len(item.frame) for item in batch])
        slices = [predictions[bounds[i] : bounds[i + 1]] for i in range(len(batch))]
        return frame, predictions, slices

    def _observe_later(self, frame: pd.DataFrame, predictions: np.ndarray) -> None:
        """Record the batch's metrics after its callers have their answers, not before.

        The same single predict thread runs it, so metrics are never recorded concurrently.
        """
        if self._observe is not None:
            with contextlib.suppress(RuntimeError):  # shutting down: the executor refuses work
                self._executor.submit(self._observe_safely, self._observe, frame, predictions)

    @staticmethod
    def _observe_safely(observe: Observe, frame: pd.DataFrame, predictions: np.ndarray) -> None:
        try:
            observe(frame, predictions)
        except Exception:
            log.exception("recording batch metrics failed")
