"""``mlops init``: turn a clone of the template into one team's platform, in place.

Every team-specific value (project name, AWS account and region, the GitHub repository that CI
roles trust, the default serving target) lives at a known anchor in a known file. Adoption is a
list of anchored rewrites, each of which *sets* a value rather than replacing an old one, so
running it again with the same answers changes nothing. The answers are validated first and
every new file content is computed in memory before the first byte is written: a bad answer
leaves the checkout untouched. The answers are recorded in ``.mlops-template.yaml`` so that
``mlops init`` with no flags re-applies them and ``mlops template update`` can render any
template version the same way (see ``pipelines.template.template_update``).

The environments are a promotion chain (``pipelines.core.environment_chain``): adoption writes a
pins file and a Pulumi stack file per environment (a new stack starts from the template's stack
of the same role), removes those of environments no longer listed, and sets the lists and targets of
the workflows. The Pulumi project takes the project's name, and with it the namespace of every
stack file's config keys.

Declining the examples moves them, rather than deleting them, to ``tests/examples/``: the test
suites train, serve and plan them as fixtures (``tests/examples_root.py``), while the team's
``models/`` and ``data/`` start empty and nothing deploys, retrains or offers the examples.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.core.definitions import discover_models
from pipelines.core.environment_chain import (
    ENVIRONMENT_PATTERN,
    MAX_ENVIRONMENTS,
    STANDARD_ENVIRONMENTS,
    YAML_KEYWORDS,
    Chain,
    spoken_list,
)
from pipelines.core.errors import DefinitionError
from pipelines.core.examples import EXAMPLE_DATASETS, EXAMPLE_MODELS, EXAMPLES_FIXTURES
from pipelines.core.pins import load_environment
from pipelines.core.yamlfile import read_yaml_mapping
from pipelines.template.adopt_environments import plan_environments
from pipelines.template.scaffold import DISPATCH_WORKFLOWS, set_model_choices

ANSWERS_FILE = ".mlops-template.yaml"

# Python distribution names that also work as Pulumi descriptions and image name prefixes.
PROJECT_PATTERN = r"^[a-z][a-z0-9-]{0,48}[a-z0-9]$"
# The project name is also the Pulumi project, whose config namespace must not be a provider's.
RESERVED_PROJECT_NAMES = ("aws", "kubernetes", "pulumi")
ACCOUNT_PATTERN = r"^[0-9]{12}$"
# The shape of a region in any partition: us-east-1, eu-west-1, us-gov-west-1, cn-north-1 ...
REGION_PATTERN = r"^(?:us|eu|ap|sa|ca|me|af|il|mx|cn)(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"
# The shape above recognises every partition's regions so that the error can say why one is
# refused: the stacks' IAM policies and principals are written as arn:aws:... (infra/components)
# and the serving image as <account>.dkr.ecr.<region>.amazonaws.com, the commercial partition's.
OTHER_PARTITION_REGION = r"^(?:cn-|[a-z]+-(?:gov|iso[a-z]?)-)"
# GitHub: owner up to 39 letters, digits and inner hyphens; repository name letters, digits,
# '.', '-', '_' (and not '.' or '..', checked in the validator: the schema regex has no lookahead).
REPOSITORY_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?/[A-Za-z0-9._-]{1,100}$"


class TemplateSource(BaseModel):
    """Where the template came from, so ``mlops template update`` can diff two versions."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Git URL or path of the template repository.")
    commit: str = Field(
        pattern=r"^[0-9a-f]{40}$", description="Template commit this repository is rendered from."
    )


class Answers(BaseModel):
    """The questions `mlops init` asks; each field is validated before anything is written."""

    model_config = ConfigDict(extra="forbid")

    project_name: Annotated[str, Field(pattern=PROJECT_PATTERN)] = Field(
        description="Python distribution and project name (lower case, digits, '-')."
    )
    aws_account_id: Annotated[str, Field(pattern=ACCOUNT_PATTERN)] = Field(
        description="The 12-digit AWS account the stacks may deploy to (aws:allowedAccountIds)."
    )
    aws_region: Annotated[str, Field(pattern=REGION_PATTERN)] = Field(
        description="AWS region of the stacks and of every workflow's AWS credentials."
    )
    github_repository: Annotated[str, Field(pattern=REPOSITORY_PATTERN)] = Field(
        description="owner/name on GitHub; the CI roles' OIDC trust accepts only it."
    )
    serving_target: Literal["sagemaker", "kubernetes"] = Field(
        description="deployment.target of models scaffolded by `mlops new-model`."
    )
    environments: list[str] = Field(
        default_factory=lambda: list(STANDARD_ENVIRONMENTS),
        description="Deployment environments in promotion order; the last is production.",
    )
    keep_examples: bool = Field(
        description="Keep the example models penguins and seattle_weather and their data."
    )
    template: TemplateSource | None = None

    @field_validator("github_repository")
    @classmethod
    def _not_a_dot_name(cls, value: str) -> str:
        if value.split("/", 1)[1] in {".", ".."}:
            raise ValueError(f"a GitHub repository is owner/name (got {value!r})")
        return value

    @field_validator("aws_region")
    @classmethod
    def _commercial_partition(cls, value: str) -> str:
        if re.match(OTHER_PARTITION_REGION, value):
            raise ValueError(
                "a region outside the commercial AWS partition (GovCloud, China, ISO); the "
                "stacks name arn:aws:... resources, so only its regions, like eu-west-1, work"
            )
        return value

    @field_validator("project_name")
    @classmethod
    def _not_a_provider_namespace(cls, value: str) -> str:
        if value in RESERVED_PROJECT_NAMES:
            raise ValueError(
                f"{value!r} is a Pulumi provider's config namespace; choose another project name"
            )
        # Pulumi.yaml's `name: true` would be a boolean, not a project name.
        if value in YAML_KEYWORDS:
            raise ValueError("reads as a boolean or null in YAML; choose another project name")
        return value

    @field_validator("environments")
    @classmethod
    def _a_promotion_chain(cls, value: list[str]) -> list[str]:
        given = ", ".join(value) or "none"
        if not 1 <= len(value) <= MAX_ENVIRONMENTS:
            raise ValueError(
                f"1 to {MAX_ENVIRONMENTS} environment names in promotion order, the last one "
                f"production (got {len(value)}: {given})"
            )
        bad = [name for name in value if not re.fullmatch(ENVIRONMENT_PATTERN, name)]
        if bad:
            raise ValueError(
                "an environment name is 1 to 20 lower case letters, digits and inner '-', "
                f"starting with a letter (got {', '.join(repr(b) for b in bad)})"
            )
        keywords = [name for name in value if name in YAML_KEYWORDS]
        if keywords:
            raise ValueError(
                "an environment name must not read as a boolean or null in YAML "
                f"(got {', '.join(repr(k) for k in keywords)})"
            )
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"each environment once (repeated: {', '.join(repeated)})")
        return value

    @property
    def chain(self) -> Chain:
        return Chain(tuple(self.environments))


def validate_answers(raw: dict[str, Any], *, source: str = "answers") -> Answers:
    """Answers from flags or the answers file, with an error naming each bad field."""
    try:
        return Answers.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        names = [".".join(str(part) for part in e["loc"]) or "answers" for e in errors]
        if len(errors) == 1:
            raise DefinitionError(_explain(errors[0]), file=source, field=names[0]) from None
        problems = "; ".join(f"{n}: {_explain(e)}" for n, e in zip(names, errors, strict=True))
        raise DefinitionError(problems, file=source, field=", ".join(names)) from None


def _explain(error: Any) -> str:
    hints = {
        "aws_account_id": "an AWS account id is exactly 12 digits",
        "aws_region": "an AWS region looks like eu-west-1",
        "github_repository": "a GitHub repository is owner/name",
        "project_name": "lower case letters, digits and '-', starting with a letter",
    }
    field_name = str(error["loc"][0]) if error["loc"] else ""
    given = error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "string_pattern_mismatch" and field_name in hints:
        message = hints[field_name]
    return f"{message} (got {given!r})" if isinstance(given, str | int) else message


def read_answers(root: Path) -> dict[str, Any] | None:
    """The recorded answers as raw data, or None when the checkout was never adopted."""

    path = root / ANSWERS_FILE
    return dict(read_yaml_mapping(path)) if path.is_file() else None


def render_answers(answers: Answers) -> str:
    """The answers file, byte-for-byte the same for the same answers (adoption is repeatable)."""
    dump = json.dumps
    lines = [
        "# The answers this repository gave when it adopted the MLOps template.",
        "# `mlops init` (no flags) re-applies them; `mlops template update` renders the next",
        "# template version with them and merges the difference. Change a value and run",
        "# `mlops init` again to apply it everywhere.",
        f"project_name: {dump(answers.project_name)}",
        f"aws_account_id: {dump(answers.aws_account_id)}",
        f"aws_region: {dump(answers.aws_region)}",
        f"github_repository: {dump(answers.github_repository)}",
        f"serving_target: {answers.serving_target}",
        f"environments: [{', '.join(answers.environments)}]",
        f"keep_examples: {'true' if answers.keep_examples else 'false'}",
    ]
    if answers.template:
        lines += [
            "template:",
            f"  url: {dump(answers.template.url)}",
            f"  commit: {dump(answers.template.commit)}",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Rewrite:
    """Set one value at an anchor: ``pattern`` must match where the value lives."""

    path: str
    pattern: str
    replacement: Callable[[Answers], str]
    required: bool = True
    count: int = 0

    def apply(self, text: str, answers: Answers, file: Path) -> str:
        regex = re.compile(self.pattern, re.MULTILINE)
        if not regex.search(text):
            if self.required:
                raise DefinitionError(
                    f"cannot find where to set the value (pattern {self.pattern!r}); "
                    "was the file edited by hand?",
                    file=file,
                )
            return text
        # Answers are validated against patterns without backslashes, so the replacement is a
        # plain template whose only escapes are the \g<n> group references.
        return regex.sub(self.replacement(answers), text, count=self.count)


def _stack_account(answers: Answers) -> str:
    return f'\\g<1>\n  aws:allowedAccountIds: ["{answers.aws_account_id}"]'


def _listed(names: list[str] | tuple[str, ...]) -> str:
    return f"[{', '.join(names)}]"


def _rewrites(answers: Answers, project_was: str) -> list[Rewrite]:
    """Every anchored value; ``project_was`` is the Pulumi project name before this run."""
    rules = [
        Rewrite(
            "pyproject.toml", r'^name = "[^"]*"', lambda a: f'name = "{a.project_name}"', True, 1
        ),
        Rewrite("Makefile", r"(--exclude )\S+", lambda a: f"\\g<1>{a.project_name}", False),
        Rewrite("README.md", r"\A# .*$", lambda a: f"# {a.project_name}", False, 1),
        Rewrite(
            "Pulumi.yaml",
            r"^description: .*$",
            lambda a: (
                f"description: MLOps platform of {a.project_name} - artifact store, "
                "registries, endpoints, monitoring, CI access"
            ),
            True,
            1,
        ),
        Rewrite(
            "Pulumi.yaml",
            r"^(# The cloud side of the platform\. Stacks: ).*?( \(Pulumi\.<stack>\.yaml\)\.)$",
            lambda a: f"\\g<1>{', '.join(a.environments)}\\g<2>",
            False,
        ),
        Rewrite(
            "Pulumi.yaml",
            r"(exactly one owns them \()[a-z0-9-]+(\))",
            lambda a: f"\\g<1>{a.chain.production}\\g<2>",
            False,
        ),
        Rewrite(
            "Pulumi.yaml",
            r"^(  githubRepository:\n(?:    .*\n)*?    default: ).*$",
            lambda a: f"\\g<1>{a.github_repository}",
        ),
        Rewrite(
            "pipelines/template/templates/model.yaml.tmpl",
            r"^(deployment:\n  target: )\w+",
            lambda a: f"\\g<1>{a.serving_target}",
        ),
        Rewrite(
            "pipelines/aws/sagemaker_flow.py",
            r"arn:aws:iam::[0-9]{12}:role/",
            lambda a: f"arn:aws:iam::{a.aws_account_id}:role/",
            False,
        ),
        Rewrite(
            "pipelines/aws/sagemaker_flow.py",
            r'"[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/',
            lambda a: f'"{a.aws_account_id}.dkr.ecr.{a.aws_region}.amazonaws.com/',
            False,
        ),
        Rewrite(
            "pipelines/aws/sagemaker_flow.py",
            r'(AWS_DEFAULT_REGION"\) or )"[a-z0-9-]+"',
            lambda a: f'\\g<1>"{a.aws_region}"',
            False,
        ),
        Rewrite(
            "docs/workflows.md",
            r"(is `)[a-z0-9-]+(` in the workflows)",
            lambda a: f"\\g<1>{a.aws_region}\\g<2>",
            False,
        ),
        Rewrite(
            ".github/CODEOWNERS",
            r"(?<=\s)@[A-Za-z0-9-]+/",
            lambda a: f"@{a.github_repository.split('/')[0]}/",
            False,
        ),
        # The stack test pins the OIDC trust to the repository Pulumi.yaml names.
        Rewrite(
            "tests/infra/test_infra_stacks.py",
            r'^REPOSITORY = "[^"]*"',
            lambda a: f'REPOSITORY = "{a.github_repository}"',
            False,
        ),
    ]
    rules += _chain_rewrites()
    rules += _pulumi_project_rewrites(answers, project_was)
    for stack in answers.environments:
        stack_file = f"Pulumi.{stack}.yaml"
        rules.append(
            Rewrite(
                stack_file,
                r"^(  # Shares the AWS account with )[a-z0-9-]+(, which owns)",
                lambda a: f"\\g<1>{a.chain.production}\\g<2>",
                False,
            )
        )
        # Drop an earlier allowedAccountIds line, then set it right after the region.
        rules.append(Rewrite(stack_file, r"^  aws:allowedAccountIds: .*\n", lambda a: "", False))
        rules.append(
            Rewrite(stack_file, r"^(  aws:region: ).*$", lambda a: f"\\g<1>{a.aws_region}")
        )
        rules.append(Rewrite(stack_file, r"^(  aws:region: .*)$", _stack_account))
    return rules


def _pulumi_project_rewrites(answers: Answers, project_was: str) -> list[Rewrite]:
    """The Pulumi project takes the project's name, and with it the namespace of the stack
    files' config keys (``pulumi.Config()`` reads the project's own namespace)."""
    rules = [Rewrite("Pulumi.yaml", r"^name: .*$", lambda a: f"name: {a.project_name}", True, 1)]
    for stack in answers.environments:
        rules.append(
            Rewrite(
                f"Pulumi.{stack}.yaml",
                rf"^(\s+){re.escape(project_was)}:(?=\w)",
                lambda a: f"\\g<1>{a.project_name}:",
                False,
            )
        )
    return rules


def _chain_rewrites() -> list[Rewrite]:
    """The workflows' environment lists and targets, from the promotion chain. Not required,
    like the other workflow rewrites: a template version from before they existed (rendered
    again by `mlops template update`) or a team's own workflow may lack the anchor."""
    workflows = ".github/workflows/"

    def every_stack(a: Answers) -> str:
        return f"\\g<1>{_listed(a.environments)}"

    def to_first(a: Answers) -> str:
        return f"\\g<1>{a.chain.first}"

    return [
        Rewrite(f"{workflows}main.yml", r"^(\s+stack: )\[.*\]$", every_stack, False),
        Rewrite(f"{workflows}pull-request.yml", r"^(\s+stack: )\[.*\]$", every_stack, False),
        Rewrite(
            f"{workflows}main.yml",
            r"^(\s+max-parallel: 1 # ).*$",
            lambda a: "\\g<1>" + ", then ".join(a.environments),
            False,
        ),
        Rewrite(
            f"{workflows}main.yml",
            r"^(  promote:\n(?:    .*\n)*?      environment: )\S+$",
            to_first,
            False,
        ),
        Rewrite(
            f"{workflows}retrain.yml",
            r"^(  retrain:\n(?:    .*\n)*?      environment: )\S+$",
            to_first,
            False,
        ),
        Rewrite(
            f"{workflows}promote.yml",
            r"^(      environment:\n(?:        .*\n)*?        default: )\S+$",
            to_first,
            False,
        ),
        Rewrite(
            f"{workflows}promote-manual.yml",
            r"^(      environment:\n(?:        .*\n)*?        options: )\[.*\]"
            r"(\n        default: )\S+$",
            lambda a: f"\\g<1>{_listed(a.chain.promoted)}\\g<2>{a.chain.production}",
            False,
        ),
        Rewrite(
            f"{workflows}infra.yml",
            r"^(      stack:\n        description: ).*$",
            lambda a: f"\\g<1>{spoken_list(a.environments)}.",
            False,
        ),
    ]


@dataclass
class Changes:
    """Everything adoption would do, computed before anything is written."""

    writes: dict[Path, str] = field(default_factory=dict)
    deletes: list[Path] = field(default_factory=list)
    moves: dict[Path, Path] = field(default_factory=dict)
    # What a removed pins file had pinned: said next to its removal, which is easy to miss.
    lost_pins: dict[Path, str] = field(default_factory=dict)

    def describe(self, root: Path) -> list[str]:
        return (
            [f"write {p.relative_to(root)}" for p in sorted(self.writes)]
            + [
                f"remove {p.relative_to(root)}"
                + (f" (and its pins: {self.lost_pins[p]})" if p in self.lost_pins else "")
                for p in sorted(self.deletes)
            ]
            + [
                f"move {p.relative_to(root)} to {self.moves[p].relative_to(root)}"
                for p in sorted(self.moves)
            ]
        )


def _check_checkout(root: Path) -> None:
    missing = [n for n in ("pyproject.toml", "Pulumi.yaml", "models") if not (root / n).exists()]
    if missing:
        raise DefinitionError(
            f"not a checkout of the MLOps template (missing {', '.join(missing)})", file=root
        )


def _workflow_rewrites(root: Path) -> list[Rewrite]:
    folder = root / ".github" / "workflows"
    return [
        Rewrite(
            str(path.relative_to(root)),
            # A plain region, or the default of `${{ vars.AWS_REGION || '<region>' }}`.
            r"^(\s+aws-region: (?:\$\{\{ vars\.AWS_REGION \|\| ')?)[a-z0-9-]+",
            lambda a: f"\\g<1>{a.aws_region}",
            False,
        )
        for path in sorted(folder.glob("*.yml"))
    ]


def _readme(kind: str) -> str:
    if kind == "models":
        return (
            "# Models\n\nOne folder per model, each with a `model.yaml` "
            "(schema: `schemas/model.schema.json`).\nStart one with "
            "`mlops new-model NAME --dataset DATASET --task classification --target COLUMN`.\n"
        )
    return (
        "# Datasets\n\nOne folder per dataset: `dataset.yaml` (schema: "
        "`schemas/dataset.schema.json`) and its data.\n`mlops new-model NAME --from-csv "
        "file.csv ...` writes both from a CSV file.\n"
    )


def plan_adoption(root: Path, answers: Answers) -> Changes:
    """Every file adoption would write or remove; raises before any change on bad input."""

    _check_checkout(root)
    if answers.keep_examples:
        _check_examples_not_dropped(root)
    contents: dict[Path, str] = {}
    originals: dict[Path, str] = {}
    changes = Changes()
    # New environments' files first: the rewrites below set their region, account and namespace.
    changes.deletes = plan_environments(
        root,
        answers.chain,
        _previous_chain(root),
        unpin=() if answers.keep_examples else EXAMPLE_MODELS,
        contents=contents,
        originals=originals,
        template_commit=answers.template.commit if answers.template else None,
    )
    changes.lost_pins = _pinned_in(changes.deletes)
    for rule in [*_rewrites(answers, _pulumi_project(root)), *_workflow_rewrites(root)]:
        path = _in_layout_of(root, rule.path)
        if path not in contents:
            if not path.is_file():
                if rule.required:
                    raise DefinitionError("missing; adoption needs it", file=path)
                continue
            originals[path] = contents[path] = path.read_text(encoding="utf-8")
        contents[path] = rule.apply(contents[path], answers, path)
    contents[root / ANSWERS_FILE] = render_answers(answers)
    originals.setdefault(root / ANSWERS_FILE, _read_or_empty(root / ANSWERS_FILE))

    if not answers.keep_examples:
        _forget_examples_in_workflows(root, contents, originals)
        examples = [Path("models") / m for m in EXAMPLE_MODELS]
        examples += [Path("data") / d for d in EXAMPLE_DATASETS]
        changes.moves = {
            root / p: root / EXAMPLES_FIXTURES / p for p in examples if (root / p).exists()
        }
        for kind in ("models", "data"):
            readme = root / kind / "README.md"
            originals.setdefault(readme, _read_or_empty(readme))
            contents.setdefault(readme, originals[readme] or _readme(kind))
    changes.writes = {p: text for p, text in contents.items() if text != originals[p]}
    return changes


def _pinned_in(paths: list[Path]) -> dict[Path, str]:
    """``penguins v3, seattle_weather v1`` for each pins file among ``paths`` that pins any."""

    pinned = {}
    for path in paths:
        if path.parent.name != "environments":
            continue
        try:
            models = load_environment(path.parent, path.stem).models
        except DefinitionError:
            continue  # a broken file is removed all the same; there is nothing to list
        if models:
            pinned[path] = ", ".join(f"{m} v{pin.version}" for m, pin in sorted(models.items()))
    return pinned


def _check_examples_not_dropped(root: Path) -> None:
    """Keeping the examples after dropping them would record keep_examples: true while they
    stay test fixtures, and `mlops template update` would then merge their changes into
    models/ and data/, where they no longer are. Adoption does not move them back."""
    fixtures = root / EXAMPLES_FIXTURES / "models"
    dropped = [
        m for m in EXAMPLE_MODELS if (fixtures / m).is_dir() and not (root / "models" / m).exists()
    ]
    if dropped:
        raise DefinitionError(
            f"{', '.join(dropped)} were dropped to {EXAMPLES_FIXTURES}/ by an earlier "
            "`mlops init --drop-examples`, and adoption does not bring them back; keep "
            "--drop-examples, or start again from a fresh clone of the template",
            file=root / ANSWERS_FILE,
            field="keep_examples",
        )


def _forget_examples_in_workflows(
    root: Path, contents: dict[Path, str], originals: dict[Path, str]
) -> None:
    """Dispatch choices list only the remaining models; the examples' retraining crons go."""

    remaining = [m for m in discover_models(root / "models") if m not in EXAMPLE_MODELS]
    examples = "|".join(EXAMPLE_MODELS)
    for name in DISPATCH_WORKFLOWS:
        path = root / ".github" / "workflows" / name
        if not path.is_file():
            continue
        if path not in contents:
            originals[path] = contents[path] = path.read_text(encoding="utf-8")
        text = set_model_choices(contents[path], remaining)
        text = re.sub(rf'^    - cron: "[^"\n]*" # (?:{examples})\n', "", text, flags=re.M)
        # A schedule with no cron left is invalid; the key goes with its last entry.
        contents[path] = re.sub(r"^  schedule:\n(?!    - )", "", text, flags=re.M)


def _previous_chain(root: Path) -> Chain:
    """The chain the checkout has now: the recorded answers', else the template's own."""
    recorded = read_answers(root) or {}
    names = recorded.get("environments")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return Chain(tuple(names))
    return Chain(STANDARD_ENVIRONMENTS)


# Where files adoption rewrites lived before pipelines/ had subpackages. ``mlops template
# update`` renders the old template version with this code too, so it must find them there.
_FLAT_LAYOUT = {
    "pipelines/template/templates/model.yaml.tmpl": "pipelines/templates/model.yaml.tmpl",
    "pipelines/aws/sagemaker_flow.py": "pipelines/sagemaker_flow.py",
}


def _in_layout_of(root: Path, path: str) -> Path:
    """``root / path``, or where the flat layout kept that file if ``root`` has that layout."""
    flat = _FLAT_LAYOUT.get(path)
    if flat and not (root / path).is_file() and (root / flat).is_file():
        return root / flat
    return root / path


def _pulumi_project(root: Path) -> str:
    """The Pulumi project name before this run: the namespace the stack files' keys are in."""
    path = root / "Pulumi.yaml"
    match = re.search(r"^name: *(\S+)", _read_or_empty(path), re.MULTILINE)
    if not match:
        raise DefinitionError("no `name:` line; adoption needs it", file=path, field="name")
    return match.group(1)


def _read_or_empty(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def apply_changes(changes: Changes) -> None:
    """Write what ``plan_adoption`` computed (all checks have passed by now)."""
    for path, text in changes.writes.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for path in changes.deletes:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for source, target in changes.moves.items():
        # A fixture left by an earlier adoption is replaced: the template's copy is the newer.
        if target.is_dir():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)


def adopt(root: Path, answers: Answers) -> Changes:
    """Plan, then apply; returns what changed (empty on a repeated run)."""
    changes = plan_adoption(root, answers)
    apply_changes(changes)
    return changes


def main(argv: list[str]) -> int:
    """``python -m pipelines.adopt ROOT`` with the answers as JSON on stdin.

    ``mlops template update`` renders each template version with that version's own adoption
    code, the way copier uses each version's own questions, so rules added in a newer template
    apply to it.
    """
    (root,) = argv
    try:
        adopt(Path(root), validate_answers(json.load(sys.stdin), source="template update"))
    except DefinitionError as exc:
        print(exc.render(), file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
