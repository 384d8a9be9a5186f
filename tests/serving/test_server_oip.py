"""The Open Inference Protocol over real HTTP on 127.0.0.1, beside the SageMaker contract: the
same model, checks, capture and metrics answer both."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
import requests
from starlette.requests import Request

from serving import metrics
from serving.app import Server
from serving.capture import decode_data, read_captures
from serving.settings import ServeSettings

pytestmark = pytest.mark.serving

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
ROWS = [[39.1, 18.7, 181.0, 3750.0, "Torgersen"], [50.0, 15.0, 220.0, 5000.0, "Biscoe"]]


def tensors(rows: list[list[Any]], **override: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(COLUMNS):
        datatype = "BYTES" if name == "island" else "FP64"
        tensor = {"name": name, "datatype": datatype, "shape": [len(rows)]}
        tensor["data"] = [r[i] for r in rows]
        out.append({**tensor, **override.get(name, {})})
    return out


def infer(url: str, body: Any, model: str = "penguins") -> requests.Response:
    return requests.post(
        f"{url}/v2/models/{model}/infer",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def test_health_and_server_metadata_answer(server: Any) -> None:
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).json() == {"ready": True}
    meta = requests.get(f"{server.url}/v2", timeout=5).json()
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_declares_the_dataset_schemas_inputs(server: Any, trained: Any) -> None:
    response = requests.get(f"{server.url}/v2/models/penguins", timeout=5)
    meta = response.json()

    assert response.status_code == 200
    assert [i["name"] for i in meta["inputs"]] == COLUMNS
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["island"] == "BYTES"
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["body_mass_g"] == "FP64"
    assert all(i["shape"] == [-1] for i in meta["inputs"])
    assert meta["outputs"] == [{"name": "predictions", "datatype": "BYTES", "shape": [-1]}]
    assert meta["versions"] == [trained.version]
    versioned = requests.get(
        f"{server.url}/v2/models/penguins/versions/{trained.version}/ready", timeout=5
    )
    assert versioned.json() == {"name": "penguins", "ready": True}


def test_infer_answers_as_invocations_does(server: Any) -> None:
    response = infer(server.url, {"id": "req-1", "inputs": tensors(ROWS)})
    sagemaker = requests.post(
        f"{server.url}/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1" and body["model_name"] == "penguins"
    assert body["outputs"][0]["data"] == sagemaker.json()["predictions"] == ["Adelie", "Gentoo"]
    assert body["outputs"][0]["shape"] == [2]


def test_an_unknown_model_is_404_in_the_protocols_error_shape(server: Any) -> None:
    for response in (
        infer(server.url, {"inputs": tensors(ROWS)}, model="trout"),
        requests.get(f"{server.url}/v2/models/trout", timeout=5),
        requests.get(f"{server.url}/v2/models/penguins/versions/999/ready", timeout=5),
    ):
        assert response.status_code == 404
        assert list(response.json()) == ["error"]
        assert "penguins" in response.json()["error"]


def test_bad_input_is_a_4xx_naming_the_input_and_the_server_keeps_serving(server: Any) -> None:
    bad = {
        "wrong datatype": tensors(ROWS, island={"datatype": "FP32"}),
        "wrong shape": tensors(ROWS, island={"shape": [1, 2]}),
        "unknown category": tensors(ROWS, island={"data": ["Atlantis", "Dream"]}),
    }
    for problem, inputs in bad.items():
        response = infer(server.url, {"inputs": inputs})
        assert response.status_code == 400, problem
        assert list(response.json()) == ["error"], problem
        assert "'island'" in response.json()["error"], problem
    missing = infer(server.url, {"inputs": tensors(ROWS)[:-1]})
    assert missing.status_code == 400 and "missing input 'island'" in missing.json()["error"]
    assert infer(server.url, {"inputs": tensors(ROWS)}).status_code == 200


def test_infer_requests_are_captured_as_the_same_record_invocations_writes(server: Any) -> None:
    marker = 43.4343  # a value no other test sends
    rows = [[marker, 18.7, 181.0, 3750.0, "Dream"]]
    assert infer(server.url, {"inputs": tensors(rows)}).status_code == 200
    deadline = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not mine:
        time.sleep(0.2)
        mine = [
            r
            for r in read_captures(server.capture_dir)
            if str(marker) in r["captureData"]["endpointInput"]["data"]
        ]
    assert len(mine) == 1
    captured = mine[0]["captureData"]
    assert captured["endpointInput"]["observedContentType"] == "application/json"
    assert orjson.loads(decode_data(captured["endpointInput"])) == {
        "dataframe_split": {"columns": COLUMNS, "data": rows}
    }
    answered = requests.post(
        f"{server.url}/invocations", json={"dataframe_split": {"data": rows}}, timeout=30
    )
    assert orjson.loads(decode_data(captured["endpointOutput"])) == answered.json()


def test_infer_requests_are_counted_in_the_same_metrics(server: Any) -> None:
    def count(status: str) -> float:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        line = f'{metrics.REQUESTS}{{status="{status}"}}'
        found = [x for x in text.splitlines() if x.startswith(line)]
        return float(found[0].rpartition(" ")[2]) if found else 0.0

    ok, bad = count("200"), count("400")
    infer(server.url, {"inputs": tensors(ROWS)})
    infer(server.url, {"inputs": tensors(ROWS, island={"datatype": "FP32"})})

    assert (count("200"), count("400")) == (ok + 1, bad + 1)


def test_ready_endpoints_are_503_before_the_model_is_loaded() -> None:
    server = Server(ServeSettings())

    def get(handler: Any, **params: str) -> Any:
        scope = {"type": "http", "method": "GET", "headers": [], "path_params": params}
        return asyncio.run(handler(Request(scope)))

    assert get(server.oip_live).status_code == 200
    assert get(server.oip_ready).status_code == 503
    not_ready = get(server.oip_model_ready, name="penguins")
    assert not_ready.status_code == 503
    assert orjson.loads(not_ready.body) == {"error": "the model is not loaded yet"}
    assert get(server.oip_model_metadata, name="penguins").status_code == 503
