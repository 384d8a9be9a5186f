"""The retrain trigger: a GitHub ``repository_dispatch`` event that starts the retrain workflow.

Retraining runs in CI, through the same gates as any change, so the monitor only asks for it:
``POST /repos/{owner}/{repo}/dispatches`` with ``event_type: drift-detected``. In dry-run (or
without a token) the request is printed instead of sent; the token is never printed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.core.conventions import RETRAIN_EVENT_TYPE
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    from monitoring.monitor import MonitorResult
    from monitoring.settings import MonitorSettings

# GitHub accepts at most 10 top-level keys in client_payload.
MAX_PAYLOAD_KEYS = 10


@dataclass
class Dispatch:
    url: str
    body: dict[str, Any]
    sent: bool
    status: int | None = None

    def describe(self) -> str:
        verb = f"sent ({self.status})" if self.sent else "dry run, not sent"
        return f"POST {self.url} {json.dumps(self.body, sort_keys=True)} [{verb}]"


def payload(result: MonitorResult, environment: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": result.model,
        "environment": environment or "",
        "version": result.reference.version or "",
        "drifted_features": result.drift.drifted_features,
        "drifted_share": round(result.drift.share, 4),
        "concept_drift": bool(result.concept and result.concept.degraded),
        "detected_at": result.at.isoformat(),
    }
    assert len(body) <= MAX_PAYLOAD_KEYS
    return {"event_type": RETRAIN_EVENT_TYPE, "client_payload": body}


def dispatch(
    result: MonitorResult,
    settings: MonitorSettings,
    *,
    environment: str | None = None,
    dry_run: bool = True,
) -> Dispatch:
    """Print (dry run) or send the dispatch; a refused request is an error naming the status."""
    repository = settings.github_repository or "OWNER/REPO"
    url = f"{settings.github_api_url.rstrip('/')}/repos/{repository}/dispatches"
    body = payload(result, environment)
    if dry_run:
        return Dispatch(url, body, sent=False)
    if settings.github_token is None or not settings.github_repository:
        raise MlopsError(
            "sending the retrain trigger needs GITHUB_TOKEN and GITHUB_REPOSITORY (owner/name); "
            "use --dry-run to print it instead",
            field="--trigger",
        )
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
            "User-Agent": "mlops-monitor",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.dispatch_timeout_seconds) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise MlopsError(
            f"GitHub refused the repository_dispatch to {url}: HTTP {exc.code} {exc.reason}",
            field="--trigger",
        ) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise MlopsError(f"cannot reach {url}: {exc}", field="--trigger") from None
    return Dispatch(url, body, sent=True, status=status)
