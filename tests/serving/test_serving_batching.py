"""The micro-batcher on its own: lone requests answered at once, concurrent ones batched, each
caller getting exactly its rows, and one bad request failing alone."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from serving.batching import INLINE_MAX_ROWS, MicroBatcher

pytestmark = pytest.mark.serving


class Recorder:
    """A model that doubles ``x``, remembering each call's size and thread."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[tuple[int, str]] = []
        self.fail_on = fail_on

    def __call__(self, data: Any) -> np.ndarray:
        x = np.asarray(data["x"], dtype=float)
        self.calls.append((len(x), threading.current_thread().name))
        if self.fail_on is not None and (x == self.fail_on).any():
            raise ValueError("bad row")
        return x * 2


def rows(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array(values, dtype=float)}


async def with_batcher(model: Recorder, body: Any) -> Any:
    batcher = MicroBatcher(model, max_wait_ms=50)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.close()


def test_a_lone_small_request_is_answered_on_the_event_loop_without_waiting():
    model = Recorder()

    async def body(batcher: MicroBatcher) -> np.ndarray:
        return await batcher.predict(rows(1, 2, 3))

    assert asyncio.run(with_batcher(model, body)).tolist() == [2, 4, 6]
    assert model.calls == [(3, threading.current_thread().name)]


def test_a_lone_large_request_goes_to_the_predict_thread():
    model = Recorder()
    big = rows(*range(INLINE_MAX_ROWS + 1))

    async def body(batcher: MicroBatcher) -> np.ndarray:
        return await batcher.predict(big)

    assert asyncio.run(with_batcher(model, body)).tolist() == (big["x"] * 2).tolist()
    assert model.calls[0][1].startswith("predict")


def test_requests_arriving_together_share_one_call_and_get_their_own_rows():
    model = Recorder()

    async def body(batcher: MicroBatcher) -> list[np.ndarray]:
        batcher.arriving = 1  # another request is being parsed: nobody is alone
        waiting = [asyncio.ensure_future(batcher.predict(rows(i, i + 0.5))) for i in range(6)]
        await asyncio.sleep(0.01)
        batcher.arriving = 0
        return list(await asyncio.gather(*waiting))

    answers = asyncio.run(with_batcher(model, body))
    assert [a.tolist() for a in answers] == [[2 * i, 2 * i + 1] for i in range(6)]
    assert [size for size, _ in model.calls] == [12]


def test_a_bad_request_in_a_batch_fails_alone():
    model = Recorder(fail_on=99)

    async def body(batcher: MicroBatcher) -> list[Any]:
        batcher.arriving = 1
        waiting = [
            asyncio.ensure_future(batcher.predict(rows(1))),
            asyncio.ensure_future(batcher.predict(rows(99))),
            asyncio.ensure_future(batcher.predict(rows(3))),
        ]
        await asyncio.sleep(0.01)
        batcher.arriving = 0
        return list(await asyncio.gather(*waiting, return_exceptions=True))

    first, bad, third = asyncio.run(with_batcher(model, body))
    assert first.tolist() == [2] and third.tolist() == [6]
    assert isinstance(bad, ValueError)


def test_requests_started_in_the_same_loop_turn_are_batched_not_answered_inline_one_by_one():
    # What eight clients look like once their requests are read in one turn of the event loop.
    model = Recorder()

    async def body(batcher: MicroBatcher) -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.predict(rows(i)) for i in range(8))))

    answers = asyncio.run(with_batcher(model, body))
    assert [a.tolist() for a in answers] == [[2 * i] for i in range(8)]
    assert len(model.calls) < 8, model.calls
