"""Which serving image a `pulumi up` (or preview) applies: never a value only the job knew.

The stack's config `image` in git stays empty (the image is built per commit), and pulumi/actions'
``config-map`` changes only the runner's copy of the stack file. So each deploy must be told the
image again, from somewhere that outlives the job: the image this run built and pushed, else the
image the stack runs now (its ``image`` output, kept in the Pulumi state). Without this, every
`up` that built nothing (a merged pins PR) would apply ``image: ""`` and remove the endpoints.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pipelines.core.errors import MlopsError

# registry/repository:tag or registry/repository@sha256:digest, as ECR and docker name images.
IMAGE_URI = re.compile(
    r"[a-z0-9.-]+(?::\d+)?/[a-z0-9._/-]+(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})"
)


@dataclass(frozen=True)
class ImageChoice:
    """The image to apply and where it came from, for the job log."""

    image: str
    source: str  # "built by this run", "the stack's current image" or "none"

    def describe(self, stack: str) -> str:
        if not self.image:
            return f"{stack}: no image (none built, the stack runs none): no endpoint is deployed"
        return f"{stack}: {self.image} ({self.source})"


def _endpoints(raw: str, stack: str) -> dict[str, object]:
    """The stack's ``endpoints`` output as pulumi/actions sets it (JSON text), or empty."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise MlopsError(f"not JSON ({err.msg})", field=f"{stack}: output endpoints") from None
    if not isinstance(value, dict):
        raise MlopsError("not a JSON object", field=f"{stack}: output endpoints")
    return value


def choose_image(stack: str, built: str, current: str, current_endpoints: str) -> ImageChoice:
    """The image this run built if any, else the one the stack runs now.

    A stack that serves endpoints but records no image (last applied by a program older than the
    ``image`` output) is refused: applying no image would delete its endpoints.
    """
    for name, value in (("--built", built), ("--current", current)):
        if value and not IMAGE_URI.fullmatch(value):
            raise MlopsError(
                f"{value!r} is not registry/repository:tag or registry/repository@sha256:digest",
                field=name,
            )
    if built:
        return ImageChoice(built, "built by this run")
    if current:
        return ImageChoice(current, "the stack's current image")
    endpoints = _endpoints(current_endpoints, stack)
    if endpoints:
        raise MlopsError(
            f"stack {stack} serves {', '.join(sorted(endpoints))} but its outputs record no image; "
            "applying none would delete them. Rebuild and push the image from main (main.yml's "
            "image job), so that the run passes it to this stack",
            field="image",
        )
    return ImageChoice("", "none")
