"""A small IAM policy evaluator for the infra tests: does this set of identity policies allow
this action on this ARN, in this request context?

It follows AWS's evaluation logic for one account's identity policies (an explicit Deny wins,
then any Allow; nothing else is allowed), with wildcards in actions and resources and the
condition operators the program uses. The Mocks take any property and grant every permission;
this is the check that can say no. Action names and which condition keys an action supports
come from policy_sentry's copy of the Service Authorization Reference (``action_facts``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from policy_sentry.querying.actions import get_action_data

Context = Mapping[str, str]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@functools.lru_cache(maxsize=4096)
def _pattern(glob: str, case_sensitive: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE)


def _matches(globs: Iterable[str], value: str, *, case_sensitive: bool) -> bool:
    return any(_pattern(g, case_sensitive).match(value) for g in globs)


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Context) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                return False  # a key absent from the request fails every non-IfExists test
            values = [str(v) for v in _as_list(expected)]
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual in values
            elif operator in ("StringLike", "ArnLike"):
                ok = _matches(values, actual, case_sensitive=True)
            elif operator == "StringEqualsIgnoreCase":
                ok = actual.lower() in (v.lower() for v in values)
            else:
                raise AssertionError(f"the evaluator does not know condition operator {operator}")
            if not ok:
                return False
    return True


def _applies(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise AssertionError(f"NotAction/NotResource is not used by the program: {statement}")
    if not _matches(_as_list(statement["Action"]), action, case_sensitive=False):
        return False
    if not _matches(_as_list(statement["Resource"]), resource, case_sensitive=True):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allows(
    policies: Iterable[Mapping[str, Any]],
    action: str,
    resource: str,
    context: Context | None = None,
) -> bool:
    """Whether the identity policies together allow ``action`` on ``resource``."""
    statements = [s for p in policies for s in _as_list(p["Statement"])]
    ctx = context or {}
    if any(s["Effect"] == "Deny" and _applies(s, action, resource, ctx) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _applies(s, action, resource, ctx) for s in statements)


@functools.lru_cache(maxsize=2048)
def action_facts(action: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """(resource ARN format, condition keys) for each resource type ``action`` is authorised
    on, per the Service Authorization Reference; empty when the action does not exist."""
    service, name = action.split(":", 1)
    rows = get_action_data(service, name).get(service, [])
    return tuple((row["resource_arn_format"], frozenset(row["condition_keys"])) for row in rows)


def supports_condition_key(action: str, key: str) -> bool:
    """Whether ``key`` is a condition key of ``action`` (tag keys match their template)."""
    templated = re.sub(r"/[^/]+$", "/${TagKey}", key) if "Tag/" in key else key
    global_keys = key.startswith("aws:") and "Tag/" not in key and key != "aws:TagKeys"
    return global_keys or any(key in keys or templated in keys for _, keys in action_facts(action))
