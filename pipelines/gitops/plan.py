"""What a change needs: which models to retrain, and whether the image or the stacks changed.

Workflows run this instead of path filters alone: a path says a file changed, the fingerprints
say whether what a model is trained from changed (``pipelines.core.fingerprints``, the same values
``register`` writes as lineage), so reformatting a model.yaml or editing the README retrains
nothing, while a dataset change retrains every model that reads it and a change to the
training code retrains them all.

A model's ``deployment`` and ``monitoring`` sections (and its ``owner``, a resource tag) are
what infra/model_plan.py builds endpoints, package groups and monitors from, so a change to
them, or a model added, removed or renamed, sets ``infra``. They do not change what is
trained, so they retrain nothing: the plan compares the definition without those two sections
(the lineage fingerprint in ``pipelines.core.fingerprints`` still covers the whole definition).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.definitions import discover_models, load_definition, load_model, model_path
from pipelines.core.errors import DefinitionError, MlopsError
from pipelines.core.fingerprints import canonical_fingerprint, code_fingerprint, model_fingerprints
from pipelines.core.pins import environment_path, list_environments, load_environment

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.core.definitions import Model
    from pipelines.core.fingerprints import Fingerprints
    from pipelines.core.settings import Settings
    from pipelines.stages.register import GatedRun

# Paths whose change means the stacks must be previewed (pull request) or applied (main).
INFRA_PATTERNS = ("infra/*", "Pulumi.yaml", "Pulumi.*.yaml", "environments/*")
# Paths whose change on main means the registry's aliases must follow the pins (`mlops sync`).
PINS_PATTERNS = ("environments/*",)
# Definition sections that only the stacks read: changing them is an infrastructure change.
INFRA_SECTIONS = ("deployment", "monitoring")
# Fields the stacks read besides those sections (resource names and tags).
INFRA_FIELDS = ("name", "owner")
# Paths the serving image is built from (serving/Dockerfile copies exactly these).
IMAGE_PATTERNS = (
    "serving/*",
    "pipelines/*",
    "requirements-runtime.lock",
    "pyproject.toml",
)
_GIT_TIMEOUT = 60
# A push that creates a branch has no previous head (github.event.before is forty zeros):
# compare with git's empty tree, so every model is new.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True)
class ModelDecision:
    """Whether a change retrains one model, and every reason why (or why not)."""

    model: str
    affected: bool
    reasons: list[str]
    # The combined lineage fingerprint of the head's inputs: what a gated run is matched on.
    fingerprint: str = ""


@dataclass
class Plan:
    """The decision for one change; ``matrix`` is what a workflow's ``strategy.matrix`` takes."""

    base: str | None
    models: list[ModelDecision]
    changed_files: list[str] = field(default_factory=list)
    removed_models: list[str] = field(default_factory=list)
    infra: bool = False
    image: bool = False
    pins: bool = False
    # model -> the gated run found for it (``with_gated_runs``); None when nobody looked.
    gated: dict[str, GatedRun] | None = None

    @property
    def affected(self) -> list[str]:
        return [m.model for m in self.models if m.affected]

    @property
    def matrix(self) -> dict[str, list[dict[str, str]]]:
        if self.gated is None:
            return {"include": [{"model": name} for name in self.affected]}
        include = []
        for name in self.affected:
            found = self.gated[name]
            source = (
                f"registered from PR run {found.run_id}"
                if found.run_id
                else f"retrained on main, not the PR's run: {found.reason}"
            )
            include.append({"model": name, "run_id": found.run_id or "", "source": source})
        return {"include": include}

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "matrix": self.matrix,
            "any": bool(self.affected),
            "infra": self.infra,
            "image": self.image,
            "pins": self.pins,
            "models": [
                {"model": m.model, "affected": m.affected, "reasons": m.reasons}
                | (
                    {"gated": self.gated[m.model].describe()}
                    if self.gated and m.model in self.gated
                    else {}
                )
                for m in self.models
            ],
            "removed_models": self.removed_models,
            "changed_files": self.changed_files,
        }

    def github_output(self) -> str:
        """``name=value`` lines for ``$GITHUB_OUTPUT``; every value is one line of JSON."""
        import json

        values = {
            "matrix": json.dumps(self.matrix, separators=(",", ":")),
            "models": " ".join(self.affected),
            "any": str(bool(self.affected)).lower(),
            "infra": str(self.infra).lower(),
            "image": str(self.image).lower(),
            "pins": str(self.pins).lower(),
        }
        return "".join(f"{k}={v}\n" for k, v in values.items())


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    """``fnmatch`` where ``*`` crosses folders: ``infra/*`` is everything under infra/."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, timeout=_GIT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MlopsError(f"git {' '.join(args)} failed: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or "no such commit or ref"
        raise MlopsError(f"git {' '.join(args)}: {message}", field="--base")
    return done.stdout


def changed_files(root: Path, base: str) -> tuple[str, list[str]]:
    """The merge base with ``base`` and every file that differs from it, committed or not."""
    if base.strip("0") == "":
        base = EMPTY_TREE
    commit = (
        EMPTY_TREE
        if base == EMPTY_TREE
        else _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}").decode().strip()
    )
    if commit != EMPTY_TREE:
        with contextlib.suppress(MlopsError):  # unrelated histories: compare with the base
            commit = _git(root, "merge-base", commit, "HEAD").decode().strip()
    diff = _git(root, "diff", "--name-only", "-z", "--no-renames", commit, "--")
    untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard")
    names = {n for n in (diff + untracked).decode().split("\0") if n}
    return commit, sorted(names)


def _extract(root: Path, commit: str, into: Path) -> None:
    """The base commit's models/, data/ and pipelines/ as files, for loading and hashing."""
    listed = _git(root, "ls-tree", "--name-only", commit).decode().split()
    folders = [f for f in ("models", "data", "pipelines") if f in listed]
    if not folders:
        return
    archive = _git(root, "archive", "--format=tar", commit, *folders)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


@dataclass(frozen=True)
class _Prints:
    """What the plan compares for one model: its lineage fingerprints, the fingerprint of what
    training reads from the definition, and the fingerprint of what the stacks read from it."""

    lineage: Fingerprints
    training: str
    infra: str


def _prints(model: Model, code: str) -> _Prints:

    prints = model_fingerprints(model)
    # The code being planned is the checkout's, not necessarily the installed package's.
    lineage = type(prints)(prints.definition, prints.dataset_definition, prints.data, code)
    document = model.definition.model_dump(mode="json")
    training = {k: v for k, v in document.items() if k not in INFRA_SECTIONS}
    infra = {k: document.get(k) for k in (*INFRA_SECTIONS, *INFRA_FIELDS)}
    return _Prints(lineage, canonical_fingerprint(training), canonical_fingerprint(infra))


def _load_all(root: Path) -> dict[str, _Prints | str]:
    """Fingerprints per model of one tree; a model that does not load maps to the reason."""

    code = code_fingerprint(root / "pipelines")
    result: dict[str, _Prints | str] = {}
    for name in discover_models(root / "models"):
        try:
            result[name] = _prints(load_model(root / "models", root / "data", name), code)
        except MlopsError as exc:
            result[name] = exc.render()
    return result


def _reasons(before: _Prints, after: _Prints, dataset: str) -> list[str]:
    reasons = []
    if before.training != after.training:
        reasons.append("model definition changed")
    if before.lineage.dataset_definition != after.lineage.dataset_definition:
        reasons.append(f"dataset definition changed ({dataset})")
    if before.lineage.data != after.lineage.data:
        reasons.append(f"data changed ({dataset}: {after.lineage.data[:19]}...)")
    if before.lineage.code != after.lineage.code:
        reasons.append("training code changed (pipelines/)")
    return reasons


def _check_pins(root: Path, models: set[str]) -> None:
    """Every pinned model must still have a definition, or ``pulumi up`` fails later."""

    environments = root / "environments"
    for env in list_environments(environments):
        unknown = sorted(set(load_environment(environments, env).models) - models)
        if unknown:
            raise DefinitionError(
                f"pins name models that have no models/<name>/model.yaml: {', '.join(unknown)}"
                " (remove the pins, or restore the models)",
                file=environment_path(environments, env),
                field="models",
            )


def plan_change(root: Path, base: str) -> Plan:
    """Compare the checkout at ``root`` with ``base``: which models changed, and why."""

    commit, files = changed_files(root, base)
    head: dict[str, Model] = {}
    for name in discover_models(root / "models"):
        # A definition that does not load fails the plan: the pull request must fix it first.
        head[name] = load_model(root / "models", root / "data", name)
    _check_pins(root, set(head))
    with tempfile.TemporaryDirectory(prefix="mlops-plan-") as tmp:
        _extract(root, commit, Path(tmp))
        before = _load_all(Path(tmp))

    code = code_fingerprint(root / "pipelines")
    plans = []
    removed = sorted(set(before) - set(head))
    infra = bool(removed) or any(matches(f, INFRA_PATTERNS) for f in files)
    for name, model in head.items():
        after = _prints(model, code)
        previous = before.get(name)
        dataset = model.dataset.name
        notes: list[str] = []
        if previous is None:
            reasons = ["new model"]
            infra = True
        elif isinstance(previous, str):
            reasons = [f"did not load at {commit[:12]} ({previous})"]
            infra = True
        else:
            reasons = _reasons(previous, after, dataset)
            if previous.infra != after.infra:
                infra = True
                notes = ["deployment/monitoring changed (infrastructure only)"]
        source = model.dataset.path.parent / model.dataset.definition.source
        try:
            relative = source.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            relative = None  # an s3:// or outside source: its declared fingerprint decides
        data_reason = any(r.startswith("data changed") for r in reasons)
        if relative in files and previous is not None and not data_reason:
            reasons.append(f"data file {relative} changed but its declared fingerprint did not")
        plans.append(
            ModelDecision(
                name, bool(reasons), reasons + notes or ["unchanged"], after.lineage.combined
            )
        )
    return Plan(
        base=commit,
        models=plans,
        changed_files=files,
        removed_models=removed,
        infra=infra,
        image=any(matches(f, IMAGE_PATTERNS) for f in files),
        pins=any(matches(f, PINS_PATTERNS) for f in files),
    )


def with_gated_runs(plan: Plan, client: MlflowClient | None, settings: Settings) -> Plan:
    """The plan, with the gated run of each affected model looked up (build once, promote many).

    On main a merged change's models are registered from the run their pull request gated,
    found by the fingerprint of the head's inputs; a model with no such run is retrained on main
    and the plan says why. ``client`` None means there is no shared registry to look in.
    """
    from pipelines.stages.register import GatedRun, find_gated_run

    gated: dict[str, GatedRun] = {}
    for decision in plan.models:
        if not decision.affected:
            continue
        if client is None:
            reason = "no shared registry (MLFLOW_TRACKING_URI) to find the pull request's run in"
            gated[decision.model] = GatedRun(
                decision.model, decision.fingerprint, None, reason=reason
            )
        else:
            found = find_gated_run(client, settings, decision.model, decision.fingerprint)
            gated[decision.model] = found
    plan.gated = gated
    return plan


def plan_selected(root: Path, models: list[str], schedule: str | None) -> Plan:
    """Retraining: the models named (a dispatch) or whose ``retraining.schedule`` is ``schedule``.

    Names come from event payloads, so each is checked against models/ before any job starts.
    """

    known = discover_models(root / "models")
    plans: dict[str, ModelDecision] = {}
    for name in models:
        if name not in known:
            raise DefinitionError(
                f"unknown model {name!r}; known models: {', '.join(known) or 'none'}",
                field="--model",
            )
        plans[name] = ModelDecision(name, True, ["requested"])
    if schedule:
        for name in known:
            definition = load_model(root / "models", root / "data", name).definition
            if definition.retraining.schedule == schedule.strip() and name not in plans:
                plans[name] = ModelDecision(name, True, [f"retraining.schedule {schedule.strip()}"])
    return Plan(base=None, models=[plans[n] for n in sorted(plans)])


def retraining_schedules(root: Path) -> dict[str, str]:
    """model -> cron of every model that declares scheduled retraining."""

    schedules = {}
    for name in discover_models(root / "models"):
        cron = load_definition(model_path(root / "models", name)).retraining.schedule
        if cron:
            schedules[name] = cron
    return schedules
