"""`mlops retrain-token`: the token reaches the connection, and nothing else is touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from pipelines.aws.dispatch_token import auth_parameters
from pipelines.cli.main import app
from pipelines.core.conventions import (
    DISPATCH_TOKEN_PLACEHOLDER,
    GITHUB_API_HEADERS,
    dispatch_connection_name,
)

pytestmark = pytest.mark.code

TOKEN = "github_pat_11ABCDEFG0123456789"


@pytest.fixture
def aws(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("GITHUB_DISPATCH_TOKEN", raising=False)
    boto3.setup_default_session()
    yield boto3.client("events")


@pytest.fixture
def sent(aws: Any) -> list[dict[str, Any]]:
    """The UpdateConnection requests the command makes (moto keeps the first secret value)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("provide-client-params.events.UpdateConnection", record)
    return calls


def _as_the_stack_creates_it(events: Any, environment: str) -> str:
    """The connection as ``infra/components/drift_to_retrain.py`` declares it."""
    params = auth_parameters("x")
    params["ApiKeyAuthParameters"]["ApiKeyValue"] = DISPATCH_TOKEN_PLACEHOLDER
    created = events.create_connection(
        Name=dispatch_connection_name(environment),
        AuthorizationType="API_KEY",
        AuthParameters=params,
    )
    return str(created["ConnectionArn"])


def test_the_token_from_stdin_lands_on_the_connection_with_the_github_headers(
    aws: Any, sent: list[dict[str, Any]]
) -> None:
    arn = _as_the_stack_creates_it(aws, "prod")
    result = CliRunner().invoke(app, ["retrain-token", "--env", "prod"], input=f"{TOKEN}\n")
    assert result.exit_code == 0, result.output
    assert arn in result.output and TOKEN not in result.output
    (request,) = sent
    assert request["Name"] == "mlops-prod-github-dispatch"
    assert request["AuthParameters"]["ApiKeyAuthParameters"] == {
        "ApiKeyName": "Authorization",
        "ApiKeyValue": f"Bearer {TOKEN}",
    }
    headers = request["AuthParameters"]["InvocationHttpParameters"]["HeaderParameters"]
    # UpdateConnection replaces the whole authorisation: the headers go with the token.
    assert {h["Key"]: h["Value"] for h in headers} == GITHUB_API_HEADERS


def test_the_environment_variable_is_read_and_only_its_stack_changes(
    aws: Any, sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_the_stack_creates_it(aws, "dev")
    _as_the_stack_creates_it(aws, "prod")
    monkeypatch.setenv("GITHUB_DISPATCH_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["retrain-token", "--env", "dev"])
    assert result.exit_code == 0, result.output
    assert [r["Name"] for r in sent] == ["mlops-dev-github-dispatch"]


@pytest.mark.parametrize(
    ("token", "says"),
    [("", "no token given"), (f"Bearer {TOKEN}", "bare token"), ("ab cd", "bare token")],
)
def test_a_malformed_token_changes_nothing(
    aws: Any, sent: list[dict[str, Any]], token: str, says: str
) -> None:
    _as_the_stack_creates_it(aws, "prod")
    result = CliRunner().invoke(app, ["retrain-token", "--env", "prod"], input=token)
    assert result.exit_code == 2
    assert says in result.output
    assert sent == []


def test_a_stack_without_the_connection_is_named(aws: Any) -> None:
    result = CliRunner().invoke(app, ["retrain-token", "--env", "staging"], input=TOKEN)
    assert result.exit_code == 2
    assert "mlops-staging-github-dispatch" in result.output and "pulumi up" in result.output
