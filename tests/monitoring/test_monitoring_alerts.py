"""Alert rules pass promtool, and every alert, panel and widget reads only exported names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring_helpers import REPO_ROOT

from monitoring.dashboards.cloudwatch import cloudwatch_dashboard_body
from serving import metrics as names

pytestmark = pytest.mark.monitoring

ALERTS = REPO_ROOT / "monitoring" / "alerts"
GRAFANA = sorted((REPO_ROOT / "monitoring" / "dashboards").glob("grafana-*.json"))
HISTOGRAMS = {names.REQUEST_LATENCY, names.BATCH_ROWS, names.PREDICTION_VALUE}

# PromQL words that are not metric names: functions are followed by "(" and dropped anyway.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "le",
}  # fmt: skip


def allowed_names() -> set[str]:
    allowed = set(names.NAMES) | set(names.MONITOR_NAMES)
    for histogram in HISTOGRAMS:
        allowed |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return allowed


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, functions, keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+|\$\{[^}]*\}", "", text)  # Grafana variables
    found = set()
    for match in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        found.add(word)
    return found


def alert_expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted(ALERTS.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(f"{path.name}:{r['alert']}", r["expr"]) for r in group["rules"]]
    return out


def grafana_expressions() -> list[tuple[str, str]]:
    out = []
    for path in GRAFANA:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            out += [(f"{path.name}:{panel['title']}", t["expr"]) for t in panel["targets"]]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
                assert inner, f"{path.name}: variable {variable['name']}: {query}"
                out.append((f"{path.name}:${variable['name']}", inner.group(1)))
    return out


def test_the_name_extractor_sees_through_promql() -> None:
    """The checker itself: finds names, ignores labels, functions, variables and keywords."""
    expr = (
        'histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{job=~"$job",le="+Inf"}[5m])))'
        " / on (job) group_left b_total > 2 * 3600 and time() - c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


@pytest.mark.parametrize(
    ("where", "expr"), alert_expressions() + grafana_expressions(), ids=lambda v: str(v)[:60]
)
def test_every_expression_uses_only_exported_metric_names(where: str, expr: str) -> None:
    """Alerts and panels query only what the server and the monitor export (serving/metrics.py)."""
    used = metric_names(expr)
    assert used, f"{where}: no metric in {expr!r}"
    assert used <= allowed_names(), f"{where}: unknown metric(s) {sorted(used - allowed_names())}"


def test_alerts_cover_latency_errors_drift_and_missing_traffic() -> None:
    alerts = {name.split(":")[1] for name, _ in alert_expressions()}
    assert {
        "ModelLatencyP99High", "ModelErrorRateHigh", "ModelDriftDetected", "ModelMissingTraffic",
    } <= alerts  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is required: apt-get install prometheus (Debian)"
    return path


def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts every rule file."""
    rules = sorted(str(p) for p in ALERTS.glob("*.yml"))
    run = subprocess.run([promtool(), "check", "rules", *rules], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules`: each alert fires on its scenario and not on the healthy one."""
    tests = sorted(str(p) for p in (ALERTS / "tests").glob("*.yml"))
    assert tests
    run = subprocess.run([promtool(), "test", "rules", *tests], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation fails promtool, so the unit tests above are not vacuous."""
    source = (ALERTS / "tests" / "drift_test.yml").read_text()
    broken = tmp_path / "tests"
    broken.mkdir()
    for rules in ALERTS.glob("*.yml"):
        shutil.copy(rules, tmp_path / rules.name)
    (broken / "drift_test.yml").write_text(source.replace("model: penguins", "model: nobody", 1))
    run = subprocess.run([promtool(), "test", "rules", str(broken / "drift_test.yml")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0


def test_cloudwatch_dashboard_uses_contract_names() -> None:
    """The infra's CloudWatch dashboard reads SageMaker's and the monitor's metric names only."""
    body = cloudwatch_dashboard_body("penguins", "penguins-prod", "eu-west-1", "prod")
    json.dumps(body)  # it is what the infra passes as DashboardBody
    allowed = {
        names.SAGEMAKER_NAMESPACE: {names.SM_MODEL_LATENCY, names.SM_INVOCATIONS, names.SM_5XX,
                                    names.SM_4XX},
        names.CLOUDWATCH_NAMESPACE: {names.CW_DRIFT_SHARE, names.CW_DRIFT_DETECTED,
                                     names.CW_CURRENT_ROWS, names.CW_FEATURE_DRIFT},
    }  # fmt: skip
    seen = set()
    for widget in body["widgets"]:
        assert widget["properties"]["region"] == "eu-west-1"
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], dict):
                expression = metric[0]["expression"]
                assert names.CLOUDWATCH_NAMESPACE in expression
                assert names.CW_FEATURE_DRIFT in expression and '"penguins"' in expression
                seen.add(names.CW_FEATURE_DRIFT)
                continue
            namespace, name = metric[0], metric[1]
            assert name in allowed[namespace]
            dims = dict(zip(metric[2:-1:2], metric[3:-1:2], strict=True))
            if namespace == names.SAGEMAKER_NAMESPACE:
                assert dims == {"EndpointName": "penguins-prod", "VariantName": "AllTraffic"}
            else:
                assert dims == {"Model": "penguins", "Environment": "prod"}
            seen.add(name)
    assert seen == allowed[names.SAGEMAKER_NAMESPACE] | allowed[names.CLOUDWATCH_NAMESPACE]
