"""The image's HEALTHCHECK: exit 0 only when /ping answers 200 on the configured port.

A module rather than inline shell so the Dockerfile keeps JSON-form commands and the check
reads the port exactly as the server does (SAGEMAKER_BIND_TO_PORT, then MLOPS_SERVE_PORT).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from serving.settings import ServeSettings


def main() -> int:
    url = f"http://127.0.0.1:{ServeSettings().port}/ping"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
