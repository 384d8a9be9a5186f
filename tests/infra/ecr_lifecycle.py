"""A small evaluator of ECR lifecycle policies, following AWS's documented semantics.

From the Amazon ECR user guide ("How lifecycle policies work" and "Lifecycle policy
properties"): rules are applied from the lowest ``rulePriority``; an image that matches the
tagging requirements of a rule cannot be expired by a rule with a lower priority; ``tagged``
with ``tagPrefixList``/``tagPatternList`` selects images having ALL the prefixes/patterns (a
pattern's ``*`` matches any characters); ``untagged`` selects images with no tag; ``any``
selects every image and must be the last rule; ``imageCountMoreThan`` sorts the selected
images from youngest to oldest by push time and expires those beyond the count;
``sinceImagePushed`` expires those pushed more than ``countNumber`` days ago.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    digest: str
    tags: tuple[str, ...]
    pushed_days_ago: float


def _selects(selection: dict[str, object], image: Image) -> bool:
    status = selection["tagStatus"]
    if status == "any":
        return True
    if status == "untagged":
        return not image.tags
    prefixes = selection.get("tagPrefixList")
    patterns = selection.get("tagPatternList")
    if not image.tags or bool(prefixes) == bool(patterns):  # tagged needs exactly one list
        return False
    if prefixes:
        return all(any(t.startswith(str(p)) for t in image.tags) for p in prefixes)  # type: ignore[union-attr]
    return all(any(fnmatch.fnmatchcase(t, str(p)) for t in image.tags) for p in patterns)  # type: ignore[union-attr]


def validate(policy: dict[str, list[dict[str, object]]]) -> None:
    """The structural rules ECR checks when the policy is put."""
    rules = policy["rules"]
    priorities = [int(r["rulePriority"]) for r in rules]  # type: ignore[call-overload]
    assert len(set(priorities)) == len(priorities), "rulePriority values must be unique"
    top = max(priorities)
    for rule in rules:
        selection: dict[str, object] = rule["selection"]  # type: ignore[assignment]
        if selection["tagStatus"] == "any":
            assert rule["rulePriority"] == top, "the tagStatus any rule must be evaluated last"
        if selection["tagStatus"] == "tagged":
            assert selection.get("tagPrefixList") or selection.get("tagPatternList")
        if selection["tagStatus"] == "untagged":
            assert "tagPrefixList" not in selection and "tagPatternList" not in selection


def expired(policy: dict[str, list[dict[str, object]]], images: list[Image]) -> set[str]:
    """The digests the policy expires from ``images``."""
    validate(policy)
    claimed: set[str] = set()
    gone: set[str] = set()
    for rule in sorted(policy["rules"], key=lambda r: int(r["rulePriority"])):  # type: ignore[call-overload]
        selection: dict[str, object] = rule["selection"]  # type: ignore[assignment]
        chosen = [i for i in images if i.digest not in claimed and _selects(selection, i)]
        claimed.update(i.digest for i in chosen)
        count = int(selection["countNumber"])  # type: ignore[call-overload]
        if selection["countType"] == "imageCountMoreThan":
            youngest_first = sorted(chosen, key=lambda i: i.pushed_days_ago)
            gone.update(i.digest for i in youngest_first[count:])
        else:
            gone.update(i.digest for i in chosen if i.pushed_days_ago > count)
    return gone
