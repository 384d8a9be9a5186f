"""Put the repository_dispatch token on a stack's EventBridge connection, outside Pulumi.

The Pulumi program creates the connection with a placeholder (``infra/components/
drift_to_retrain.py``) so that no secret is in its config or state; this sets the real value
with ``events:UpdateConnection``, which EventBridge stores in a Secrets Manager secret of its
own. Run by an administrator at bootstrap and whenever the token is rotated.
"""

from __future__ import annotations

from typing import Any

from pipelines.core.conventions import (
    DISPATCH_TOKEN_PLACEHOLDER,
    GITHUB_API_HEADERS,
    dispatch_connection_name,
)
from pipelines.core.errors import MlopsError


def _checked(token: str) -> str:
    token = token.strip()
    if not token:
        raise MlopsError("no token given (pipe it on stdin or set GITHUB_DISPATCH_TOKEN)")
    if any(c.isspace() for c in token) or token.lower().startswith("bearer"):
        raise MlopsError(
            "the token must be the bare token (for example github_pat_... or ghs_...), "
            "without 'Bearer' or spaces"
        )
    return token


def auth_parameters(token: str) -> dict[str, Any]:
    """The connection's whole authorisation: UpdateConnection replaces it, headers included."""
    return {
        "ApiKeyAuthParameters": {"ApiKeyName": "Authorization", "ApiKeyValue": f"Bearer {token}"},
        "InvocationHttpParameters": {
            "HeaderParameters": [
                {"Key": key, "Value": value, "IsValueSecret": False}
                for key, value in GITHUB_API_HEADERS.items()
            ]
        },
    }


def set_dispatch_token(environment: str, token: str, *, client: Any = None) -> str:
    """Set the token on ``environment``'s connection; returns the connection's ARN.

    Nothing is changed unless the connection exists and is the API-key connection the stack
    created; the token is never printed.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    token = _checked(token)
    if f"Bearer {token}" == DISPATCH_TOKEN_PLACEHOLDER:
        raise MlopsError("that is the placeholder, not a token")
    events = client or boto3.client("events")
    name = dispatch_connection_name(environment)
    try:
        connection = events.describe_connection(Name=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            raise MlopsError(
                f"the stack {environment!r} has no connection {name!r}: run `pulumi up` for "
                "it first (the connection exists once a model has retraining.on_drift)",
                field="--env",
            ) from None
        raise MlopsError(f"cannot read the connection {name!r}: {exc}") from None
    except BotoCoreError as exc:
        raise MlopsError(f"cannot reach EventBridge: {exc}") from None
    if connection.get("AuthorizationType") != "API_KEY":
        raise MlopsError(
            f"the connection {name!r} uses {connection.get('AuthorizationType')} authorisation, "
            "not the API key the stack creates; nothing was changed"
        )
    try:
        events.update_connection(
            Name=name, AuthorizationType="API_KEY", AuthParameters=auth_parameters(token)
        )
    except (ClientError, BotoCoreError) as exc:
        raise MlopsError(f"cannot update the connection {name!r}: {exc}") from None
    return str(connection["ConnectionArn"])
