"""The server over real HTTP on 127.0.0.1: contract, content types, bad input, capture,
metrics, micro-batching under concurrency and a short load run."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
import requests

from serving import metrics
from serving.capture import decode_data, read_captures

pytestmark = pytest.mark.serving

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]
ROW = [39.1, 18.7, 181.0, 3750.0, "Torgersen"]
GENTOO = [50.0, 15.0, 220.0, 5000.0, "Biscoe"]


def post(url: str, body: Any, content_type: str = "application/json", **headers: str) -> Any:
    data = orjson.dumps(body) if not isinstance(body, bytes | str) else body
    return requests.post(
        f"{url}/invocations",
        data=data,
        headers={"Content-Type": content_type, **headers},
        timeout=30,
    )


def split(rows: list[list[Any]], columns: list[str] = COLUMNS) -> dict[str, Any]:
    return {"dataframe_split": {"columns": columns, "data": rows}}


def scrape(url: str) -> dict[str, float]:
    """The /metrics text as {series with labels: value}."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def assert_alive(url: str) -> None:
    response = post(url, split([ROW]))
    assert response.status_code == 200, response.text


# -- the contract -------------------------------------------------------------------------------


def test_ping_answers_200_once_the_model_is_loaded(server: Any) -> None:
    response = requests.get(f"{server.url}/ping", timeout=5)
    assert response.status_code == 200
    assert response.json()["model"] == "penguins"


def test_json_in_json_out_by_default(server: Any) -> None:
    response = post(server.url, split([ROW, GENTOO]))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"predictions": ["Adelie", "Gentoo"]}


@pytest.mark.parametrize(
    "body",
    [
        split([ROW, GENTOO]),
        {"dataframe_split": {"data": [ROW, GENTOO]}},  # columns left out: the model's order
        {"dataframe_records": [dict(zip(COLUMNS, r, strict=True)) for r in (ROW, GENTOO)]},
        {"instances": [dict(zip(COLUMNS, r, strict=True)) for r in (ROW, GENTOO)]},
        {"instances": [ROW, GENTOO]},
    ],
    ids=["split", "split-no-columns", "records", "instances-records", "instances-lists"],
)
def test_every_mlflow_json_shape_gives_the_same_answer(server: Any, body: Any) -> None:
    response = post(server.url, body)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == ["Adelie", "Gentoo"]


def test_csv_in_csv_out_with_columns_in_any_order(server: Any) -> None:
    order = [4, 0, 1, 2, 3]
    header = ",".join(COLUMNS[i] for i in order)
    lines = [",".join(str(r[i]) for i in order) for r in (ROW, GENTOO)]
    response = post(server.url, "\n".join([header, *lines]) + "\n", "text/csv", Accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines() == ["Adelie", "Gentoo"]


def test_a_batch_of_many_rows_gets_one_prediction_per_row(server: Any, trained: Any) -> None:
    import pandas as pd

    from serving.model import load

    rows = [
        [35.0 + (i % 25), 14.0 + (i % 8), 175.0 + (i % 45), 3000.0 + 7 * i,
         ["Biscoe", "Dream", "Torgersen"][i % 3]]
        for i in range(500)
    ]  # fmt: skip
    response = post(server.url, split(rows))
    assert response.status_code == 200
    model = load(trained.model_dir, fast_path=False)  # the estimator itself
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    assert response.json()["predictions"] == expected


def test_an_unsupported_accept_is_406(server: Any) -> None:
    response = post(server.url, split([ROW]), Accept="application/xml")
    assert response.status_code == 406


# -- bad input ---------------------------------------------------------------------------------


BAD_INPUTS = {
    "missing column": (split([ROW[:4]], COLUMNS[:4]), "application/json", 400, "island"),
    "extra column": (split([[*ROW, 1]], [*COLUMNS, "colour"]), "application/json", 400, "colour"),
    "wrong type": (
        split([["long", 18.7, 181.0, 3750.0, "Dream"]]), "application/json", 400,
        "bill_length_mm",
    ),
    "out of range": (
        split([[39.1, 18.7, 181.0, 99999.0, "Dream"]]), "application/json", 400, "body_mass_g",
    ),
    "unknown category": (
        split([[39.1, 18.7, 181.0, 3750.0, "Atlantis"]]), "application/json", 400, "island",
    ),
    "null": (split([[39.1, None, 181.0, 3750.0, "Dream"]]), "application/json", 400,
             "bill_depth_mm"),
    "csv wrong type": (
        ",".join(COLUMNS) + "\n39.1,18.7,abc,3750,Dream\n", "text/csv", 400, "flipper_length_mm",
    ),
    "csv without header": ("39.1,18.7,181,3750,Dream\n", "text/csv", 400, None),
    "malformed json": (b'{"dataframe_split": {', "application/json", 400, None),
    "unknown json shape": ({"inputs": [ROW]}, "application/json", 400, None),
    "wrong content type": (b"<xml/>", "application/xml", 415, None),
    "empty body": (b"", "application/json", 400, None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_naming_the_column_and_the_server_keeps_serving(
    server: Any, case: str
) -> None:
    body, content_type, status, column = BAD_INPUTS[case]
    response = post(server.url, body, content_type)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"]
    if column is not None:
        assert answer["column"] == column
        assert column in answer["error"]
    assert_alive(server.url)


def test_a_body_over_the_limit_is_413_and_the_server_keeps_serving(server: Any) -> None:
    rows = [ROW] * (server.max_body_bytes // 30)
    body = orjson.dumps(split(rows))
    assert len(body) > server.max_body_bytes
    response = post(server.url, body)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert_alive(server.url)


def test_a_bad_request_in_flight_does_not_fail_good_ones(server: Any) -> None:
    bad = split([[39.1, 18.7, 181.0, 3750.0, "Atlantis"]])
    good = split([GENTOO])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post(server.url, bad if i % 2 else good), range(40)))
    for i, answer in enumerate(answers):
        if i % 2:
            assert answer.status_code == 400
        else:
            assert answer.status_code == 200
            assert answer.json()["predictions"] == ["Gentoo"]


# -- capture -----------------------------------------------------------------------------------


def test_requests_are_captured_in_the_sagemaker_data_capture_format(server: Any) -> None:
    marker = 41.2345  # a value no other test sends, to find this test's records
    post(server.url, split([[marker, 18.7, 181.0, 3750.0, "Dream"]]))
    csv_body = ",".join(COLUMNS) + f"\n{marker},18.7,181,3750,Dream\n"
    post(server.url, csv_body, "text/csv", Accept="text/csv")
    deadline = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(mine) < 2:
        time.sleep(0.2)
        mine = [
            r
            for r in read_captures(server.capture_dir)
            if str(marker) in r["captureData"]["endpointInput"]["data"]
        ]
    assert len(mine) == 2
    for record in mine:
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
        assert record["eventVersion"] == "0"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                            record["eventMetadata"]["inferenceTime"])  # fmt: skip
        assert record["eventMetadata"]["eventId"]
        for side, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
            payload = record["captureData"][side]
            assert set(payload) == {"observedContentType", "mode", "data", "encoding"}
            assert payload["mode"] == mode
    as_csv, as_json = sorted(mine, key=lambda r: r["captureData"]["endpointInput"]["encoding"])
    assert as_csv["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert decode_data(as_csv["captureData"]["endpointOutput"]) == b"Adelie\n"
    assert orjson.loads(decode_data(as_json["captureData"]["endpointOutput"])) == {
        "predictions": ["Adelie"]
    }
    # SageMaker's layout: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
    files = list(server.capture_dir.rglob("*.jsonl"))
    relative = files[0].relative_to(server.capture_dir).parts
    assert relative[:2] == ("penguins", "AllTraffic")
    assert [len(p) for p in relative[2:6]] == [4, 2, 2, 2]


def test_rejected_requests_are_not_captured(server: Any) -> None:
    marker = 42.4242
    post(server.url, split([[marker, 18.7, 181.0, 3750.0, "Atlantis"]]))
    time.sleep(0.6)  # three flush periods
    assert not [
        r
        for r in read_captures(server.capture_dir)
        if str(marker) in r["captureData"]["endpointInput"]["data"]
    ]


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_count_known_traffic(server: Any) -> None:
    before = scrape(server.url)
    for _ in range(3):
        assert post(server.url, split([ROW, GENTOO])).status_code == 200
    assert post(server.url, split([ROW[:4]], COLUMNS[:4])).status_code == 400
    after = scrape(server.url)

    def delta(series: str) -> float:
        return after.get(series, 0.0) - before.get(series, 0.0)

    assert delta(f'{metrics.REQUESTS}{{status="200"}}') == 3
    assert delta(f'{metrics.REQUESTS}{{status="400"}}') == 1
    assert delta(f"{metrics.REQUEST_LATENCY}_count") == 4
    assert delta(metrics.ROWS) == 6
    assert delta(f'{metrics.PREDICTIONS}{{class="Adelie"}}') == 3
    assert delta(f'{metrics.PREDICTIONS}{{class="Gentoo"}}') == 3
    assert delta(f'{metrics.FEATURE_CATEGORIES}{{category="Torgersen",feature="island"}}') == 3
    assert delta(f'{metrics.FEATURE_CATEGORIES}{{category="Biscoe",feature="island"}}') == 3
    assert delta(f'{metrics.FEATURE_SUM}{{feature="body_mass_g"}}') == pytest.approx(3 * 8750)
    bins = [k for k in after if k.startswith(f'{metrics.FEATURE_BINS}{{bin="[2000,2500)"')]
    assert bins  # ten bins over the declared range of each numeric feature
    assert after[f"{metrics.MODEL_LOADED}"] == 1


def test_every_exported_metric_is_in_the_names_contract(server: Any) -> None:
    post(server.url, split([ROW]))
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    families = re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE)
    # Clients differ on whether a counter's TYPE line carries _total; the family is the same.
    exported = {name.removesuffix("_total") for name in families}
    assert exported == {name.removesuffix("_total") for name in metrics.NAMES}


# -- micro-batching and load -------------------------------------------------------------------


def test_concurrent_callers_each_get_exactly_their_own_rows(server: Any, trained: Any) -> None:
    import pandas as pd

    from serving.model import load

    threads, per_thread = 8, 50
    islands = ["Biscoe", "Dream", "Torgersen"]

    def rows_of(t: int, i: int) -> list[list[Any]]:
        # Distinct rows per request, 1 to 3 of them, spread over the feature space.
        k = t * per_thread + i
        return [
            [32.0 + (k % 27) + j * 0.5, 14.0 + (k % 7), 172.0 + (k % 50), 2800.0 + 7 * k,
             islands[(k + j) % 3]]
            for j in range(1 + k % 3)
        ]  # fmt: skip

    keys = [(t, i) for t in range(threads) for i in range(per_thread)]
    everything = [row for key in keys for row in rows_of(*key)]
    # One in-process call for every row, sliced per request: the answer each caller must get.
    predicted = load(trained.model_dir, fast_path=False).predict(
        pd.DataFrame(everything, columns=COLUMNS)
    )
    expected: dict[tuple[int, int], list[Any]] = {}
    offset = 0
    for key in keys:
        n = len(rows_of(*key))
        expected[key] = predicted[offset : offset + n].tolist()
        offset += n
    assert len({tuple(v) for v in expected.values()}) > 1  # the rows tell requests apart
    before = scrape(server.url)
    wrong: list[tuple[int, int]] = []
    lock = threading.Lock()

    def caller(t: int) -> None:
        with requests.Session() as session:
            for i in range(per_thread):
                response = session.post(
                    f"{server.url}/invocations",
                    data=orjson.dumps(split(rows_of(t, i))),
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                if (
                    response.status_code != 200
                    or response.json()["predictions"] != expected[(t, i)]
                ):
                    with lock:
                        wrong.append((t, i))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(caller, range(threads)))
    after = scrape(server.url)
    assert wrong == []
    calls = after[f"{metrics.BATCH_ROWS}_count"] - before[f"{metrics.BATCH_ROWS}_count"]
    assert calls < threads * per_thread  # some requests shared a predict call


def test_a_short_load_run_has_no_errors(server: Any) -> None:
    body = orjson.dumps(split([ROW]))
    deadline = time.monotonic() + 3
    statuses: list[int] = []

    def client(_: int) -> list[int]:
        seen = []
        with requests.Session() as session:
            while time.monotonic() < deadline and len(seen) < 60:
                response = session.post(
                    f"{server.url}/invocations",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                seen.append(response.status_code)
        return seen

    with ThreadPoolExecutor(4) as pool:
        for seen in pool.map(client, range(4)):
            statuses.extend(seen)
    assert statuses
    assert set(statuses) == {200}
