"""Adaptive micro-batching: requests that arrive together share one predict call.

Each request is parsed and checked on its own before it gets here, so a batch holds only valid
rows and one caller's bad input can never fail another caller's rows. A single worker task
takes whatever is queued (up to ``max_rows``), runs ``predict`` in a worker thread so the event
loop keeps accepting and parsing, and hands each caller exactly its own slice of the result.

It is adaptive: a batch waits up to ``max_wait`` for more requests only while other requests are
being received and parsed (counted by the server as they arrive), so a lone client never pays
the wait, and under load the requests that queue during one predict call form the next batch.
A small request that finds nothing queued, arriving or predicting, even after one turn of the
event loop (in which requests read at the same time show up), is answered on the event loop at
once: with nobody to share a batch with, the two thread hops would be its only cost. Should
a batched call fail anyway, each request of the batch is retried alone, so the error reaches
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

from serving.schema import Columns

log = logging.getLogger("serving.batching")

# Larger lone requests still go to the predict thread, so the event loop is never held long.
INLINE_MAX_ROWS = 64

Predict = Callable[[Columns], np.ndarray]
Observe = Callable[[Columns, np.ndarray], None]


def _nothing() -> None:
    return None


@dataclass
class _Item:
    data: Columns
    rows: int
    future: asyncio.Future[np.ndarray]


def _rows(data: Columns) -> int:
    return len(next(iter(data.values()))) if data else 0


def _concat(parts: list[Columns]) -> Columns:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


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
        self._busy = False  # a batch is being gathered or predicted
        self._deciding = 0  # requests taking their one loop turn before going inline

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

    async def predict(self, data: Columns) -> np.ndarray:
        """These rows' predictions, possibly computed together with other requests' rows."""
        rows = _rows(data)
        if rows <= INLINE_MAX_ROWS and self._alone() and await self._still_alone():
            predictions = np.asarray(self._predict(data))
            if len(predictions) != rows:
                raise RuntimeError(f"the model returned {len(predictions)} rows for {rows}")
            if self._observe is not None:
                # On the loop too, once this response is written: handing the work to the
                # predict thread would make it compete for the GIL with the next request.
                asyncio.get_running_loop().call_soon(
                    self._observe_safely, self._observe, data, predictions
                )
            return predictions
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(data, rows, future))
        return await future

    def _alone(self) -> bool:
        """No other request is queued, being received, predicted or about to go inline."""
        return (
            not self._busy
            and self.arriving <= 0
            and self._deciding <= 0
            and self._carry is None
            and self._queue.empty()
            and self._task is not None
        )

    async def _still_alone(self) -> bool:
        # Requests whose bytes arrived together get their tasks started in the same loop turn:
        # one turn lets them reach the batcher (or at least start arriving) before we decide.
        self._deciding += 1
        try:
            await asyncio.sleep(0)
        finally:
            self._deciding -= 1
        return self._alone()

    async def _collect(self) -> list[_Item]:
        loop = asyncio.get_running_loop()
        first, self._carry = self._carry, None
        batch = [first if first is not None else await self._queue.get()]
        self._busy = True
        rows = batch[0].rows
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
            if rows + item.rows > self.max_rows:
                # Too big to join: it leads the next batch instead.
                self._carry = item
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            try:
                await self._answer([item for item in batch if not item.future.done()])
            finally:
                self._busy = False

    async def _answer(self, batch: list[_Item]) -> None:
        if not batch:  # every caller gone
            return
        loop = asyncio.get_running_loop()
        try:
            data, predictions, results = await loop.run_in_executor(
                self._executor, self._predict_batch, batch
            )
        except Exception:
            log.exception("batched predict failed; retrying each request alone")
            for item in batch:
                await self._predict_alone(item)
            return
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        self._observe_later(data, predictions)

    async def _predict_alone(self, item: _Item) -> None:
        loop = asyncio.get_running_loop()
        try:
            data, predictions, (result,) = await loop.run_in_executor(
                self._executor, self._predict_batch, [item]
            )
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)
        self._observe_later(data, predictions)

    def _predict_batch(self, batch: list[_Item]) -> tuple[Columns, np.ndarray, list[np.ndarray]]:
        data = batch[0].data if len(batch) == 1 else _concat([item.data for item in batch])
        rows = sum(item.rows for item in batch)
        predictions = np.asarray(self._predict(data))
        if len(predictions) != rows:
            raise RuntimeError(f"the model returned {len(predictions)} rows for {rows}")
        bounds = np.cumsum([0] + [item.rows for item in batch])
        slices = [predictions[bounds[i] : bounds[i + 1]] for i in range(len(batch))]
        return data, predictions, slices

    def _observe_later(self, data: Columns, predictions: np.ndarray) -> None:
        """Record the batch's metrics after its callers have their answers, not before.

        The same single predict thread runs it, so metrics are never recorded concurrently.
        """
        if self._observe is not None:
            with contextlib.suppress(RuntimeError):  # shutting down: the executor refuses work
                self._executor.submit(self._observe_safely, self._observe, data, predictions)

    @staticmethod
    def _observe_safely(observe: Observe, data: Columns, predictions: np.ndarray) -> None:
        try:
            observe(data, predictions)
        except Exception:
            log.exception("recording batch metrics failed")
