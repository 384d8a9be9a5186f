"""The drift alarm's way to GitHub where moto stops: what the Pulumi program declares, how an
alarm evaluates, the event CloudWatch sends, and what an input transformer makes of it.

Imported by name (``from alarm_dispatch import ...``), as ``integration_stack`` is. Moto stores
alarms, sets their state and matches rules' event patterns against the events put on a bus; it
does not evaluate alarms, send CloudWatch's events, implement ``TestEventPattern`` (5.2.5 answers
an empty 200) or put an input transformer's body on an API destination's request. Those pieces
are here, each small and following the AWS documentation it names, so that a test can run the
chain with moto saying yes or no wherever moto can.
"""

from __future__ import annotations

import json
import operator
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The infra suite's mock runtime (the program's resources, as a deploy would send them) and the
# workflow suite's fake GitHub and workflow files: shared with those suites, not copied.
TESTS = Path(__file__).resolve().parents[1]
for _suite in ("infra", "workflows"):
    if str(TESTS / _suite) not in sys.path:
        sys.path.append(str(TESTS / _suite))

from pulumi_mocks import REPO_ROOT, Run, run_infra_main, stack_config  # noqa: E402

from pipelines.core.pins import list_environments, load_environment  # noqa: E402

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
API_DESTINATION = "aws:cloudwatch/eventApiDestination:EventApiDestination"
CONNECTION = "aws:cloudwatch/eventConnection:EventConnection"


def stack_config_for(stack: str) -> dict[str, Any]:
    """The configuration ``stack`` deploys with: its Pulumi.<stack>.yaml, or, where adoption
    renamed the repository's environments (scratch checkouts keep dev -> staging -> prod), the
    stack file of the environment production promotes from, the role staging plays."""
    if (REPO_ROOT / f"Pulumi.{stack}.yaml").is_file():
        return stack_config(stack)
    pins = REPO_ROOT / "environments"
    (production,) = [
        e for e in (load_environment(pins, n) for n in list_environments(pins)) if e.champion
    ]
    return stack_config(production.promote_from or production.environment)


def declared_stack(stack: str, root: Path) -> Run:
    """``infra/__main__.py`` as stack ``stack``, following the checkout at ``root``, under the
    mock runtime: every resource exactly as ``pulumi up`` would send it."""

    return run_infra_main(stack, root, stack_config_for(stack))


def put_metric_alarm_request(inputs: dict[str, Any]) -> dict[str, Any]:
    """A MetricAlarm's Pulumi inputs as the PutMetricAlarm request the provider makes of them."""
    integers = {"period", "evaluationPeriods", "datapointsToAlarm"}
    request: dict[str, Any] = {}
    for key, value in inputs.items():
        if key == "name":
            request["AlarmName"] = value
        elif key == "dimensions":
            request["Dimensions"] = [{"Name": k, "Value": v} for k, v in value.items()]
        elif key == "tags":
            request["Tags"] = [{"Key": k, "Value": v} for k, v in value.items()]
        else:  # the mock runtime carries numbers as doubles
            request[key[0].upper() + key[1:]] = int(value) if key in integers else value
    return request


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def evaluate_alarm(alarm: dict[str, Any], datapoints: list[dict[str, Any]]) -> str:
    """The state a static-threshold metric alarm takes on ``datapoints`` (GetMetricStatistics
    answers with the alarm's statistic and period, over its last EvaluationPeriods periods).

    A small honest evaluator, not CloudWatch's: the newest EvaluationPeriods values are compared
    with the threshold by the alarm's operator, and DatapointsToAlarm (default: all of them)
    breaching ones make ALARM. Missing periods count as TreatMissingData says ("breaching",
    "notBreaching"); with "missing" or "ignore" and no value at all the state is
    INSUFFICIENT_DATA. Anomaly detection, metric math and percentiles are outside it, and an
    alarm using them is refused rather than judged wrongly.
    (Amazon CloudWatch user guide, "Using Amazon CloudWatch alarms": evaluation periods,
    datapoints to alarm, missing data treatment.)
    """
    if alarm.get("Metrics") or "Statistic" not in alarm:
        raise ValueError(f"{alarm['AlarmName']}: only single-statistic alarms are evaluated here")
    periods = int(alarm["EvaluationPeriods"])
    needed = int(alarm.get("DatapointsToAlarm") or periods)
    compare = _COMPARISONS[alarm["ComparisonOperator"]]
    newest = sorted(datapoints, key=lambda p: p["Timestamp"])[-periods:]
    values = [float(p[alarm["Statistic"]]) for p in newest]
    breaching = sum(compare(v, float(alarm["Threshold"])) for v in values)
    treatment = alarm.get("TreatMissingData", "missing")
    if treatment == "breaching":
        breaching += periods - len(values)
    elif not values and treatment in ("missing", "ignore"):
        return "INSUFFICIENT_DATA"
    return "ALARM" if breaching >= needed else "OK"


def alarm_state_change_event(
    alarm: dict[str, Any], previous: dict[str, Any], *, account: str, region: str
) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" event CloudWatch sends to EventBridge when ``alarm``
    (DescribeAlarms, after the change) left the state ``previous`` had, in the shape of the
    documented single-metric example (Amazon CloudWatch user guide, "Alarm events and
    EventBridge", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).
    """

    def state(a: dict[str, Any]) -> dict[str, Any]:
        found = {"value": a["StateValue"], "reason": a.get("StateReason", "")}
        if a.get("StateReasonData"):
            found["reasonData"] = a["StateReasonData"]
        return {**found, "timestamp": _stamp(a["StateUpdatedTimestamp"])}

    metric = {
        "namespace": alarm["Namespace"],
        "name": alarm["MetricName"],
        "dimensions": {d["Name"]: d["Value"] for d in alarm["Dimensions"]},
    }
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": alarm["StateUpdatedTimestamp"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [alarm["AlarmArn"]],
        "detail": {
            "alarmName": alarm["AlarmName"],
            "state": state(alarm),
            "previousState": state(previous),
            "configuration": {
                "description": alarm.get("AlarmDescription", ""),
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": metric,
                            "period": alarm["Period"],
                            "stat": alarm["Statistic"],
                        },
                        "returnData": True,
                    }
                ],
            },
        },
    }


def _stamp(at: datetime) -> str:
    """A state's timestamp as the documented events write it: 2019-10-02T17:04:40.985+0000."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


_STEP = re.compile(r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_\-.]+)>")


def _path_value(event: dict[str, Any], path: str) -> Any:
    """One InputPathsMap path: dot notation and array indices, the plain part of the subset
    EventBridge documents; wildcards are refused rather than guessed at."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r}: an input path starts at $")
    rest, value = path[1:], event
    while rest:
        step = _STEP.match(rest)
        if step is None:
            raise ValueError(f"{path!r}: outside the dot-and-index subset evaluated here")
        key, index = step.groups()
        try:
            value = value[key] if key is not None else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"{path!r} finds nothing in the event") from None
        rest = rest[step.end() :]
    return value


def transform_input(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """The body an EventBridge target with this input transformer receives for ``event``.

    Each placeholder ``<name>`` of the template takes the value InputPathsMap's path finds. As
    the documented examples show (Amazon EventBridge user guide, "Amazon EventBridge input
    transformation", https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html),
    a placeholder outside quotes becomes the value as JSON (a string with its quotes:
    ``{"instance": <instance>}`` gives ``{"instance": "i-0123456789"}``) and one inside a JSON
    string becomes the value's text. Predefined ``aws.events.*`` variables are not modelled.
    """
    paths: dict[str, str] = transformer.get("inputPaths") or transformer.get("InputPathsMap") or {}
    template: str = transformer.get("inputTemplate") or transformer["InputTemplate"]
    values = {name: _path_value(event, path) for name, path in paths.items()}
    out, in_string, i = [], False, 0
    while i < len(template):
        char = template[i]
        placeholder = _PLACEHOLDER.match(template, i) if char == "<" else None
        if placeholder:
            name = placeholder.group(1)
            if name not in values:
                raise ValueError(f"<{name}>: not in InputPathsMap {sorted(values)}")
            value = values[name]
            if in_string:
                out.append(value if isinstance(value, str) else json.dumps(value))
            else:
                out.append(json.dumps(value))
            i = placeholder.end()
            continue
        if char == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if char == '"':
            in_string = not in_string
        out.append(char)
        i += 1
    return "".join(out)
