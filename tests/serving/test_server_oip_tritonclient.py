"""The server's Open Inference Protocol through a client no one here wrote: Triton's
``tritonclient[http]`` (binary tensors by default, and JSON), including a bad request."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.serving

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
ROWS = [[39.1, 18.7, 181.0, 3750.0, "Torgersen"], [50.0, 15.0, 220.0, 5000.0, "Biscoe"]]


@pytest.fixture(scope="module")
def client(server: Any) -> Any:
    connection = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield connection
    connection.close()


def inputs(rows: list[list[Any]], binary: bool, island_type: str = "BYTES") -> list[Any]:
    """One InferInput per column, shaped [N, 1] as Triton examples send them."""
    out = []
    for i, name in enumerate(COLUMNS):
        if name == "island":
            values = np.array([[r[i]] for r in rows], dtype=object)
            if island_type != "BYTES":
                values = np.zeros((len(rows), 1), dtype=np.float32)
        else:
            values = np.array([[r[i]] for r in rows], dtype=np.float64)
        tensor = triton.InferInput(
            name, list(values.shape), island_type if name == "island" else "FP64"
        )
        tensor.set_data_from_numpy(values, binary_data=binary)
        out.append(tensor)
    return out


def test_the_server_is_live_and_the_model_ready(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("penguins")
    assert not client.is_model_ready("trout")


def test_model_metadata_lists_the_inputs_the_client_must_send(client: Any) -> None:
    meta = client.get_model_metadata("penguins")

    assert [i["name"] for i in meta["inputs"]] == COLUMNS
    assert [i["datatype"] for i in meta["inputs"]] == ["FP64"] * 4 + ["BYTES"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_answers_as_invocations_does(client: Any, server: Any, binary: bool) -> None:
    result = client.infer("penguins", inputs(ROWS, binary), request_id="t-1")
    sagemaker = requests.post(
        f"{server.url}/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        timeout=30,
    ).json()["predictions"]

    predictions = result.as_numpy("predictions")
    assert [p.decode() if isinstance(p, bytes) else p for p in predictions] == sagemaker
    assert result.get_response()["id"] == "t-1"


def test_a_bad_request_raises_with_the_servers_message_naming_the_input(client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("penguins", inputs(ROWS, binary=True, island_type="FP32"))

    assert caught.value.status() == "400"
    assert "'island'" in caught.value.message() and "FP32" in caught.value.message()
    assert client.infer("penguins", inputs(ROWS, binary=True)).as_numpy("predictions") is not None
