"""Post the report as one pull-request comment, editing the previous one instead of adding more.

The comment is found by the hidden marker it starts with (``pr_report.MARKER``) among the
comments written by the workflow's own account, so a pull request pushed ten times still
carries one report. Plain REST calls with the job's token: no extra tool or action to pin.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipelines.core.errors import MlopsError
from pipelines.gitops.pr_report import MARKER

BOT = "github-actions[bot]"
MAX_PAGES = 50  # 5,000 comments: a bound on the search, not a limit anyone meets
TIMEOUT_SECONDS = 30


class GitHub:
    """The three REST calls a report needs, against ``api_url`` (GITHUB_API_URL)."""

    def __init__(self, api_url: str, repository: str, token: str) -> None:
        self.api_url = check_api_url(api_url)
        if repository.count("/") != 1 or not all(repository.split("/")):
            raise MlopsError(f"{repository!r} is not owner/name", field="--repository")
        self.repository = repository
        self._token = token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}/repos/{self.repository}/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            reason = _error_message(exc)
            raise MlopsError(
                f"GitHub refused {method} {path}: HTTP {exc.code}"
                + (f": {reason}" if reason else "")
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise MlopsError(f"GitHub API at {self.api_url} is unreachable: {exc}") from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise MlopsError(
                f"GitHub API at {self.api_url} answered {method} {path} with something that is "
                f"not JSON ({raw[:60]!r}); is --api-url the REST API?",
                field="--api-url",
            ) from None

    def find_report(self, pr: int, author: str = BOT) -> int | None:
        for page in range(1, MAX_PAGES + 1):
            comments = self._call("GET", f"issues/{pr}/comments?per_page=100&page={page}")
            if not isinstance(comments, list):
                raise MlopsError(
                    f"GitHub API at {self.api_url} did not answer with a list of comments",
                    field="--api-url",
                )
            for comment in comments:
                if not isinstance(comment, dict):
                    continue
                mine = (comment.get("user") or {}).get("login") == author
                if mine and str(comment.get("body", "")).startswith(MARKER):
                    return int(comment["id"])
            if len(comments) < 100:
                return None
        return None

    def post_report(self, pr: int, body: str, author: str = BOT) -> tuple[str, int]:
        """Edit the report comment if there is one, else create it; returns (verb, id)."""
        if not body.startswith(MARKER):
            body = f"{MARKER}\n{body}"
        existing = self.find_report(pr, author)
        if existing is not None:
            self._call("PATCH", f"issues/comments/{existing}", {"body": body})
            return "updated", existing
        created = self._call("POST", f"issues/{pr}/comments", {"body": body})
        if not isinstance(created, dict) or not isinstance(created.get("id"), int):
            raise MlopsError(f"GitHub API at {self.api_url} answered without a comment id")
        return "created", created["id"]


def check_api_url(api_url: str) -> str:
    """``--api-url`` as an http(s) URL with a host, or a clear error (never a traceback)."""
    try:
        parts = urllib.parse.urlsplit(api_url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise MlopsError(f"{api_url!r} is not a URL ({exc})", field="--api-url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MlopsError(
            f"{api_url!r} is not an http(s) URL with a host, e.g. https://api.github.com",
            field="--api-url",
        )
    return api_url.strip().rstrip("/")


def _error_message(exc: urllib.error.HTTPError) -> str:
    """GitHub's own words for a refusal (``message`` and each ``errors`` entry), if any."""
    try:
        payload = json.loads(exc.read() or b"null")
    except (OSError, ValueError, http.client.HTTPException):
        return ""
    if not isinstance(payload, dict):
        return ""
    words = [str(payload.get("message") or "")]
    for error in payload.get("errors") or []:
        text = error.get("message") or error.get("code") if isinstance(error, dict) else error
        if text:
            words.append(str(text))
    return "; ".join(w for w in words if w)[:500]
