"""The server's Open Inference Protocol through KServe's own REST client (``kserve``'s
``InferenceRESTClient``, asynchronous), including a bad request.

kserve is installed without its dependency list (requirements-nodeps.lock says why)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import requests
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

pytestmark = pytest.mark.serving

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
ROWS = [[39.1, 18.7, 181.0, 3750.0, "Torgersen"], [50.0, 15.0, 220.0, 5000.0, "Biscoe"]]
T = TypeVar("T")


def call(work: Callable[[InferenceRESTClient], Awaitable[T]]) -> T:
    """Run one coroutine with a fresh client (httpx's async client belongs to one event loop)."""

    async def run() -> T:
        async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
            return await work(client)

    return asyncio.run(run())


def request(rows: list[list[Any]], island: str = "BYTES", binary: bool = False) -> InferRequest:
    inputs = []
    for i, name in enumerate(COLUMNS):
        if name == "island":
            tensor = InferInput(name, [len(rows)], island)
            if island == "BYTES":
                tensor.set_data_from_numpy(np.array([r[i] for r in rows], dtype=object), binary)
            else:
                tensor.set_data_from_numpy(np.zeros(len(rows), dtype=np.int64), binary)
        else:
            tensor = InferInput(name, [len(rows)], "FP64")
            tensor.set_data_from_numpy(np.array([r[i] for r in rows], dtype=np.float64), binary)
        inputs.append(tensor)
    return InferRequest(model_name="penguins", infer_inputs=inputs, request_id="k-1")


def test_the_server_is_live_and_the_model_ready(server: Any) -> None:
    assert call(lambda c: c.is_server_live(server.url))
    assert call(lambda c: c.is_server_ready(server.url))
    assert call(lambda c: c.is_model_ready(server.url, "penguins"))
    assert not call(lambda c: c.is_model_ready(server.url, "trout"))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_answers_as_invocations_does(server: Any, binary: bool) -> None:
    response = call(lambda c: c.infer(server.url, request(ROWS, binary=binary), "penguins"))
    sagemaker = requests.post(
        f"{server.url}/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        timeout=30,
    ).json()["predictions"]

    assert response.id == "k-1"
    assert response.outputs[0].name == "predictions"
    assert list(response.outputs[0].as_numpy()) == sagemaker


def test_a_bad_request_raises_with_the_servers_message_naming_the_input(server: Any) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        call(lambda c: c.infer(server.url, request(ROWS, island="INT64"), "penguins"))

    assert caught.value.response.status_code == 400
    assert "'island'" in str(caught.value) and "INT64" in str(caught.value)
    assert call(lambda c: c.infer(server.url, request(ROWS), "penguins")).outputs
