"""The Prometheus alert rules under ``monitoring/alerts/``, read once for every part that uses them.

The same rule files are checked by promtool, published to the Prometheus Operator as one
PrometheusRule, and, for the ``rollout`` flavour, give the Argo Rollouts analysis its queries:
a canary is rolled back on exactly the latency and error-rate expressions that page a human, so
the two can never disagree about what "bad" means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ALERTS_GLOB = "alerts/*.yml"
# The alerts whose expressions decide a canary's fate, by the analysis metric they become.
ROLLBACK_ALERTS = {"latency-p99": "ModelLatencyP99High", "error-rate": "ModelErrorRateHigh"}


def read_alert_rules(monitoring_dir: Path) -> dict[str, str]:
    """Rule files by file name under ``monitoring/alerts``; none is not an error."""
    return {p.name: p.read_text() for p in sorted(monitoring_dir.glob(ALERTS_GLOB)) if p.is_file()}


def prometheus_rule_groups(alert_rules: dict[str, str]) -> list[dict[str, Any]]:
    """Every group of every rules file, as one PrometheusRule's spec.groups (same rules that
    promtool checks and unit-tests: one definition)."""
    groups: list[dict[str, Any]] = []
    for file_name, text in sorted(alert_rules.items()):
        data = yaml.safe_load(text) or {}
        for group in data.get("groups") or []:
            if any(g["name"] == group["name"] for g in groups):
                raise ValueError(f"monitoring/alerts/{file_name}: group {group['name']!r} twice")
            groups.append(group)
    return groups


def alert_expression(alert_rules: dict[str, str], alert: str) -> str:
    """The ``expr`` of one alert, as written in its rules file (trailing newline dropped)."""
    for group in prometheus_rule_groups(alert_rules):
        for rule in group.get("rules") or []:
            if rule.get("alert") == alert:
                return str(rule["expr"]).strip()
    raise ValueError(f"monitoring/alerts: no alert named {alert!r} (the rollout analysis uses it)")


def rollback_expressions(alert_rules: dict[str, str]) -> dict[str, str]:
    """Analysis metric name -> the alert expression that fails it."""
    return {name: alert_expression(alert_rules, alert) for name, alert in ROLLBACK_ALERTS.items()}


def scoped_to_job(expression: str, job: str) -> str:
    """``expression`` (an alert, one series per ``job`` while it fires) kept to one job.

    The expression is used unchanged, so the analysis fails exactly when the alert would fire
    for that job; ``and on (job)`` only drops the other jobs' series.
    """
    return f'({expression}) and on (job) up{{job="{job}"}}'
