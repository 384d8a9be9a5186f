"""A template repository built from this checkout, adoptions of it, and the CLI run inside them.

The template under test is the working tree (not the last commit), copied into a throwaway git
repository so that clones, fetches and merges are real git operations on file paths, offline.
In a repository that dropped the examples (they live in tests/examples), the copy puts them back
where the template has them, and in one adopted with other environments it goes back to dev,
staging and prod, so that adoption is tested on the template's own shape.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from examples_root import EXAMPLES_DROPPED, FIXTURES

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# What a checkout has that the template does not ship: state, caches, installed tools.
NOT_SHIPPED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".lock-venv",
    ".mlops",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "__pycache__",
    "node_modules",
    "*.egg-info",
    ".mlops-template.yaml",
)
NON_DEFAULT = {
    "--project-name": "fraud-ml",
    "--aws-account-id": "210987654321",
    "--aws-region": "eu-west-1",
    "--github-repository": "acme/ml-platform",
    "--serving-target": "kubernetes",
}
# Run the CLI of the checkout at cwd (its own pipelines package), in either layout: the
# subpackages' pipelines/cli/main.py, or a template version from before them (pipelines/cli.py).
CLI = (
    "try:\n    from pipelines.cli.main import main\n"
    "except ImportError:\n    from pipelines.cli import main\n"
    "main()"
)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def make_template(path: Path) -> Path:
    """A git repository holding this working tree as its one commit (version A)."""
    git(path.parent, "init", "--quiet", "--initial-branch=main", str(path))
    return release_working_tree(path, "template version A")


def release_working_tree(path: Path, message: str) -> Path:
    """Commit this working tree, in the template's shape, as the next version of ``path``."""
    for child in path.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    shutil.copytree(REPO_ROOT, path, ignore=NOT_SHIPPED, symlinks=True, dirs_exist_ok=True)
    if EXAMPLES_DROPPED:
        restore_examples(path)
    restore_standard_environments(path)
    git(path, "add", "--all", "--force")
    git(path, "commit", "--quiet", "--allow-empty", "-m", message)
    return path


def release_commit(path: Path, commit: str, message: str) -> Path:
    """Commit this repository's ``commit`` (its files as they were) as the next version of
    ``path``: a release of the past, for updates between two fixed template versions."""
    for child in path.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        timeout=120,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, timeout=120, check=True)
    git(path, "add", "--all", "--force")
    git(path, "commit", "--quiet", "--allow-empty", "-m", message)
    return path


def extract_commit(repo: Path, commit: str, path: Path) -> Path:
    """The files of ``commit`` of ``repo`` (its history) as a new repository's first commit."""
    path.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit],
        capture_output=True,
        timeout=120,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, timeout=120, check=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "--all", "--force")
    git(path, "commit", "--quiet", "-m", f"template at {commit[:12]}")
    return path


def restore_examples(path: Path) -> None:
    """Undo what ``mlops init --drop-examples`` did to the examples in the copy at ``path``:
    back in models/ and data/, in the dispatch choices and with their retraining crons."""
    from pipelines.core.definitions import discover_models
    from pipelines.gitops.plan import retraining_schedules
    from pipelines.template.scaffold import DISPATCH_WORKFLOWS, set_model_choices

    fixtures = path / FIXTURES.relative_to(REPO_ROOT)
    examples = discover_models(fixtures / "models")
    for kind in ("models", "data"):
        for folder in sorted((fixtures / kind).iterdir()):
            shutil.move(folder, path / kind / folder.name)
    shutil.rmtree(fixtures)
    workflows = path / ".github" / "workflows"
    for name in DISPATCH_WORKFLOWS:
        workflow = workflows / name
        text = workflow.read_text(encoding="utf-8")
        workflow.write_text(set_model_choices(text, discover_models(path / "models")))
    schedules = retraining_schedules(path)
    crons = "".join(f'    - cron: "{schedules[m]}" # {m}\n' for m in examples if m in schedules)
    retrain = workflows / "retrain.yml"
    text = retrain.read_text(encoding="utf-8")
    if re.search(r"^  schedule:\n", text, re.M):
        text = re.sub(r"^  schedule:\n", lambda m: m.group(0) + crons, text, count=1, flags=re.M)
    elif crons:
        text = re.sub(
            r"^on:\n", lambda m: m.group(0) + "  schedule:\n" + crons, text, count=1, flags=re.M
        )
    retrain.write_text(text, encoding="utf-8")


def restore_standard_environments(path: Path) -> None:
    """Adopt the copy at ``path`` back to dev, staging and prod if this repository chose other
    environments (each stack file starts from the one of the same role, as adoption does)."""
    from pipelines.core.environment_chain import STANDARD_ENVIRONMENTS
    from pipelines.template.adopt import ANSWERS_FILE, adopt, read_answers, validate_answers

    recorded = read_answers(REPO_ROOT)
    if not recorded or recorded.get("environments") == list(STANDARD_ENVIRONMENTS):
        return
    shutil.copy(REPO_ROOT / ANSWERS_FILE, path / ANSWERS_FILE)  # the chain to start from
    answers = validate_answers(
        {**recorded, "environments": list(STANDARD_ENVIRONMENTS), "keep_examples": True}
    )
    adopt(path, answers)
    (path / ANSWERS_FILE).unlink()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def mlops(root: Path, *args: str, timeout: float = 120) -> Result:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "MLOPS_ROOT": str(root),
        "MLOPS_HOME": str(root / ".mlops"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [PYTHON, "-c", CLI, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_tests(root: Path, *paths: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """pytest of the adopted checkout, on its own code (the rendered folder, not this one).

    Like this checkout's .venv, its installed node tools serve the adopted one (tests/infra
    validates CRDs with them); copied, so that nothing run there can change this checkout's.
    """
    tools = REPO_ROOT / "tools" / "node_modules"
    if (
        tools.is_dir()
        and (root / "tools").is_dir()
        and not (root / "tools" / "node_modules").exists()
    ):
        shutil.copytree(tools, root / "tools" / "node_modules", symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(root)}
    for name in ("MLOPS_ROOT", "MLOPS_HOME", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    return subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *paths],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (folders as None) outside .git: what "changes nothing" compares."""
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
        if ".git" not in p.relative_to(root).parts and "__pycache__" not in p.parts
    }


def flags(**overrides: str) -> list[str]:
    answers = {**NON_DEFAULT, **{f"--{k.replace('_', '-')}": v for k, v in overrides.items()}}
    return [x for pair in answers.items() for x in pair]
