"""``mlops template update``: bring a newer template version into an adopted repository.

The same three-way merge copier does, with git alone: render the template commit the
repository was adopted from with the recorded answers (A), render the new template commit with
the same answers (B), and cherry-pick the difference A -> B onto the repository. What the team
changed (its own models, settings, edits to template files) is kept; what the template changed
arrives already rewritten with the team's values; where both touched the same lines git leaves
conflict markers to resolve. Nothing is committed: the result is staged for review.

Each version is rendered with its own adoption code. When the new version adopts differently
(a rename such as the Pulumi project taking the project's name), the old render and the
repository's own files are first adopted once more with the new version's code, as
`mlops init` of the new version would, and that is picked first: then the template's
difference carries only its content changes, which merge with the team's edits line by line
instead of conflicting with the rename on every line.

Only objects are added to the repository's git database while rendering (a temporary index
and work tree); its branches and working tree change only in the final cherry-pick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import MlopsError
from pipelines.template.adopt import ANSWERS_FILE, Answers, TemplateSource, adopt

# Commits made while rendering need an identity even on a machine with no git config.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "mlops template",
    "GIT_AUTHOR_EMAIL": "mlops-template@localhost",
    "GIT_COMMITTER_NAME": "mlops template",
    "GIT_COMMITTER_EMAIL": "mlops-template@localhost",
}


class TemplateError(MlopsError):
    """The template could not be fetched or merged; the repository is unchanged."""


def git(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run git in ``repo`` and return its stdout; a failure names the git command."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **_IDENTITY, **(env or {})},
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise TemplateError(
            f"`git {' '.join(args)}` failed: {result.stderr.strip() or result.stdout.strip()}",
            file=repo,
        )
    return result.stdout


def template_source(repo: Path) -> TemplateSource | None:
    """The template a fresh clone came from: its origin and HEAD, if it is a git checkout."""
    if git(repo, "rev-parse", "--is-inside-work-tree", check=False).strip() != "true":
        return None
    url = git(repo, "remote", "get-url", "origin", check=False).strip()
    commit = git(repo, "rev-parse", "HEAD", check=False).strip()
    return TemplateSource(url=url, commit=commit) if url and len(commit) == 40 else None


def _extract(repo: Path, commit: str, folder: Path) -> Path:
    """The files of ``commit`` in ``folder`` (which must not exist yet)."""
    folder.mkdir()
    archive = folder.with_suffix(".tar")
    git(repo, "archive", "--format=tar", f"--output={archive}", commit)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    archive.unlink()
    return folder


def _render(
    repo: Path,
    commit: str,
    answers: Answers,
    parent: str | None,
    *,
    codes: tuple[Path | None, ...] = (None,),
) -> str:
    """Commit object of the files of ``commit`` adopted with ``answers`` (no ref moves), by the
    adoption code of each tree in ``codes`` in turn (None: the commit's own)."""
    with tempfile.TemporaryDirectory(prefix="mlops-template-") as tmp:
        tree_dir = _extract(repo, commit, Path(tmp) / "tree")
        for code in codes:
            _adopt_with_code(tree_dir, answers, code=code or tree_dir)
        env = {
            "GIT_DIR": git(repo, "rev-parse", "--absolute-git-dir").strip(),
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_WORK_TREE": str(tree_dir),
        }
        git(tree_dir, "add", "--all", "--force", ".", env=env)
        tree = git(tree_dir, "write-tree", env=env).strip()
    parents = ["-p", parent] if parent else []
    message = f"{commit[:12]} adopted with {ANSWERS_FILE}"
    return git(repo, "commit-tree", tree, *parents, "-m", message).strip()


def _adopt_with_code(tree: Path, answers: Answers, *, code: Path) -> None:
    """Adopt ``tree`` with the adoption code of the tree ``code`` (ours if it has none)."""
    if not (code / "pipelines" / "adopt.py").is_file():
        adopt(tree, answers)
        return
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.template.adopt", str(tree)],
        input=answers.model_dump_json(),
        capture_output=True,
        text=True,
        cwd=code,
        # No __pycache__ in the rendered tree: it would be committed with it.
        env={**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise TemplateError(
            f"the template version cannot be rendered with these answers: {result.stderr.strip()}",
            file=ANSWERS_FILE,
        )


@dataclass(frozen=True)
class UpdateResult:
    old: str
    new: str
    changed: list[str]

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new


def update(
    repo: Path, answers: Answers, *, url: str | None = None, ref: str = "HEAD"
) -> UpdateResult:
    """Merge template changes ``answers.template.commit`` -> ``url``@``ref`` into ``repo``."""
    if answers.template is None and url is None:
        raise TemplateError(
            "no template recorded; pass --url (and run `mlops init` from a clone of the template)",
            file=repo / ANSWERS_FILE,
            field="template",
        )
    if answers.template is None:
        raise TemplateError(
            "no template commit recorded, so there is no base to merge from",
            file=repo / ANSWERS_FILE,
            field="template.commit",
        )
    if git(repo, "status", "--porcelain").strip():
        raise TemplateError("has uncommitted changes; commit or stash them first", file=repo)
    source = url or answers.template.url
    git(repo, "fetch", "--quiet", "--no-tags", source, ref)
    new = git(repo, "rev-parse", "FETCH_HEAD^{commit}").strip()
    old = answers.template.commit
    if not has_commit(repo, old):
        git(repo, "fetch", "--quiet", "--no-tags", source, old)
    if old == new:
        return UpdateResult(old, new, [])
    at_old = answers.model_copy(update={"template": TemplateSource(url=source, commit=old)})
    at_new = answers.model_copy(update={"template": TemplateSource(url=source, commit=new)})
    head = git(repo, "rev-parse", "HEAD").strip()
    with tempfile.TemporaryDirectory(prefix="mlops-template-") as tmp:
        new_code = _extract(repo, new, Path(tmp) / "new")
        # Base and ours both adopted the new version's way too: what is left to merge is the
        # template's content change, not a change in how adoption writes things.
        before = _render(repo, old, at_old, None, codes=(None, new_code))
        ours = _render(repo, head, at_old, head, codes=(new_code,))
    after = _render(repo, new, at_new, before)
    picks = [ours, after] if _tree(repo, ours) != _tree(repo, head) else [after]
    result = subprocess.run(
        ["git", "-C", str(repo), "cherry-pick", "--no-commit", *picks],
        capture_output=True,
        text=True,
        env={**os.environ, **_IDENTITY},
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        conflicts = git(repo, "diff", "--name-only", "--diff-filter=U").split()
        raise TemplateError(
            f"template {new[:12]} merged with conflicts in {', '.join(conflicts) or '?'}; "
            "resolve them, then commit (git cherry-pick --abort undoes the update)",
            file=repo,
        )
    changed = git(repo, "diff", "--cached", "--name-only").split()
    return UpdateResult(old, new, changed)


def _tree(repo: Path, commit: str) -> str:
    return git(repo, "rev-parse", f"{commit}^{{tree}}").strip()


def has_commit(repo: Path, commit: str) -> bool:
    """Whether the git database of ``repo`` holds ``commit``."""
    probe = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0
