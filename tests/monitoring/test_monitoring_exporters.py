"""The monitor's metrics: Prometheus exposition parsed back, CloudWatch through moto."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from monitoring_helpers import Champion, Writer, grown

from monitoring.exporters import put_cloudwatch, write_prometheus
from monitoring.monitor import MonitorResult, run_monitor
from serving import metrics as names

pytestmark = pytest.mark.monitoring


@pytest.fixture
def result(champion: Champion, penguins: pd.DataFrame, write_captures: Writer) -> MonitorResult:
    from pipelines.core.registry import connect

    location = write_captures(grown(penguins.sample(150, random_state=5)))
    return run_monitor(
        champion.settings, "penguins", location, client=connect(champion.settings), env="prod"
    )


def test_prometheus_text_parses_back_to_the_contract_names(
    result: MonitorResult, tmp_path: Path
) -> None:
    """Every exported family is a MONITOR_NAMES name, with the values of the result."""
    from prometheus_client.parser import text_string_to_metric_families

    text = write_prometheus(result, tmp_path / "drift.prom").read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == set(names.MONITOR_NAMES)
    detected = families[names.DRIFT_DETECTED].samples
    assert [(s.labels, s.value) for s in detected] == [({"model": "penguins"}, 1.0)]
    scores = {
        s.labels["feature"]: (s.labels["method"], s.value)
        for s in families[names.DRIFT_SCORE].samples
    }
    for f in result.drift.features:
        assert scores[f.feature] == (f.method, pytest.approx(f.score))
    assert "prediction" in scores
    rows = families[names.MONITOR_ROWS].samples[0].value
    assert rows == result.current.rows == 150
    share = families[names.DRIFT_SHARE].samples[0].value
    assert share == pytest.approx(result.drift.share)


def test_cloudwatch_metrics_land_in_the_namespace(result: MonitorResult) -> None:
    """put_metric_data with the CW_* names and Model/Environment(/Feature) dimensions."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("cloudwatch", region_name="us-east-1")
        sent = put_cloudwatch(result, "staging", client=client)
        listed = client.list_metrics(Namespace=names.CLOUDWATCH_NAMESPACE)["Metrics"]
        stats = client.get_metric_statistics(
            Namespace=names.CLOUDWATCH_NAMESPACE,
            MetricName=names.CW_DRIFT_SHARE,
            Dimensions=[
                {"Name": "Model", "Value": "penguins"},
                {"Name": "Environment", "Value": "staging"},
            ],
            StartTime=result.at.replace(microsecond=0) - pd.Timedelta(minutes=5),
            EndTime=result.at + pd.Timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    assert sent == 3 + len(result.drift.features) == len(listed)
    assert {m["MetricName"] for m in listed} == {
        names.CW_DRIFT_SHARE, names.CW_DRIFT_DETECTED, names.CW_CURRENT_ROWS,
        names.CW_FEATURE_DRIFT,
    }  # fmt: skip
    features = {
        d["Value"]
        for m in listed
        for d in m["Dimensions"]
        if m["MetricName"] == names.CW_FEATURE_DRIFT and d["Name"] == "Feature"
    }
    assert features == {f.feature for f in result.drift.features}
    assert [p["Maximum"] for p in stats] == [pytest.approx(result.drift.share)]


def test_push_to_a_pushgateway_on_localhost(result: MonitorResult) -> None:
    """--push: the same families PUT to a Pushgateway, grouped by job and model."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from prometheus_client.parser import text_string_to_metric_families

    from monitoring.exporters import push_prometheus

    received: list[tuple[str, str, bytes]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        push_prometheus(result, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    [(method, path, body)] = received
    assert (method, path) == ("PUT", "/metrics/job/mlops-monitor/model/penguins")
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert families == set(names.MONITOR_NAMES)
