"""The retrain trigger: a repository_dispatch printed in dry run, or sent to the GitHub API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from monitoring.retrain import dispatch
from monitoring.settings import MonitorSettings
from pipelines.core.conventions import RETRAIN_EVENT_TYPE
from pipelines.core.errors import MlopsError

pytestmark = pytest.mark.monitoring

TOKEN = "ghp_not_a_real_token"


class FakeResult:
    """The few fields of a MonitorResult that the payload reads."""

    def __init__(self) -> None:
        from datetime import UTC, datetime
        from types import SimpleNamespace

        self.model = "penguins"
        self.reference = SimpleNamespace(version="3")
        self.drift = SimpleNamespace(drifted_features=["bill_length_mm"], share=0.6)
        self.concept = None
        self.at = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def github() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    """A tiny GitHub API on 127.0.0.1 that records dispatches and answers the queued status."""
    received: list[dict[str, Any]] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "path": self.path,
                    "auth": self.headers["Authorization"],
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(statuses.pop(0) if statuses else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received, statuses
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def settings(url: str, token: str | None = TOKEN) -> MonitorSettings:
    return MonitorSettings(
        github_api_url=url,
        github_repository="acme/models",
        github_token=SecretStr(token) if token else None,
    )


def test_dispatch_is_sent_with_the_token(
    github: tuple[str, list[dict[str, Any]], list[int]],
) -> None:
    """POST /repos/{repo}/dispatches, event_type drift-detected, the model in client_payload."""
    url, received, _ = github
    sent = dispatch(FakeResult(), settings(url), environment="prod", dry_run=False)  # type: ignore[arg-type]
    assert sent.sent and sent.status == 204
    [request] = received
    assert request["path"] == "/repos/acme/models/dispatches"
    assert request["auth"] == f"Bearer {TOKEN}"
    assert request["body"]["event_type"] == RETRAIN_EVENT_TYPE
    payload = request["body"]["client_payload"]
    assert payload["model"] == "penguins" and payload["environment"] == "prod"
    assert payload["drifted_features"] == ["bill_length_mm"] and len(payload) <= 10
    assert TOKEN not in sent.describe()


def test_dry_run_sends_nothing(github: tuple[str, list[dict[str, Any]], list[int]]) -> None:
    """Dry run prints the request (without the token) and makes no call."""
    url, received, _ = github
    printed = dispatch(FakeResult(), settings(url), dry_run=True)  # type: ignore[arg-type]
    assert not printed.sent and received == []
    assert "drift-detected" in printed.describe() and TOKEN not in printed.describe()


def test_refusal_and_missing_token_are_errors(
    github: tuple[str, list[dict[str, Any]], list[int]],
) -> None:
    """A 404 from GitHub, or no token, is a clear error rather than a silent success."""
    url, _, statuses = github
    statuses.append(404)
    with pytest.raises(MlopsError, match="HTTP 404"):
        dispatch(FakeResult(), settings(url), dry_run=False)  # type: ignore[arg-type]
    with pytest.raises(MlopsError, match="GITHUB_TOKEN"):
        dispatch(FakeResult(), settings(url, token=None), dry_run=False)  # type: ignore[arg-type]
