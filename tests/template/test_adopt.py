"""`mlops init`: every answer lands where it belongs, a rerun changes nothing, bad answers
change nothing, declined examples become test fixtures, and the adopted checkout passes its own
quick checks with or without the examples."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from template_helpers import NON_DEFAULT, flags, git, mlops, run_tests, snapshot

pytestmark = pytest.mark.code

STACKS = ("dev", "staging", "prod")
EXAMPLES = ("penguins", "seattle_weather")


def test_adoption_sets_every_answer_and_drops_the_declined_examples(
    clone: Path, template: Path
) -> None:
    result = mlops(clone, "init", *flags(), "--drop-examples")
    assert result.exit_code == 0, result.output

    for stack in STACKS:
        config = yaml.safe_load((clone / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert config["aws:region"] == "eu-west-1", stack
        assert config["aws:allowedAccountIds"] == ["210987654321"], stack
    project = yaml.safe_load((clone / "Pulumi.yaml").read_text())
    assert project["name"] == "fraud-ml", "the Pulumi project is the team's"
    for stack in STACKS:
        config = yaml.safe_load((clone / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert {key.split(":")[0] for key in config} == {"aws", "fraud-ml"}, stack
    assert project["config"]["githubRepository"]["default"] == "acme/ml-platform"
    assert "fraud-ml" in project["description"]
    assert 'name = "fraud-ml"' in (clone / "pyproject.toml").read_text()
    assert (clone / "README.md").read_text().startswith("# fraud-ml\n")
    assert (
        "target: kubernetes" in (clone / "pipelines/template/templates/model.yaml.tmpl").read_text()
    )
    workflows = {p.name: p.read_text() for p in (clone / ".github/workflows").glob("*.yml")}
    assert any("aws-region: eu-west-1" in text for text in workflows.values())
    # No placeholder of the template survives in what the team deploys or runs.
    shipped = [clone / "Pulumi.yaml", *clone.glob("Pulumi.*.yaml"), *clone.glob(".github/**/*")]
    shipped += [clone / "pipelines/aws/sagemaker_flow.py", clone / "docs/workflows.md"]
    for path in (p for p in shipped if p.is_file()):
        text = path.read_text()
        for placeholder in ("us-east-1", "123456789012", "example-org/mlops-template"):
            assert placeholder not in text, (path, placeholder)
    owners = (clone / ".github/CODEOWNERS").read_text()
    assert "@acme/ml-platform" in owners and "@example-org/" not in owners

    # The examples leave the team's models/ and data/ for the tests' fixture folder, intact.
    fixtures = clone / "tests/examples"
    for kind, name in [(k, n) for k in ("models", "data") for n in EXAMPLES]:
        assert not (clone / kind / name).exists(), (kind, name)
        moved = sorted(p.relative_to(fixtures / kind) for p in (fixtures / kind / name).rglob("*"))
        shipped = sorted(
            p.relative_to(template / kind) for p in (template / kind / name).rglob("*")
        )
        assert moved and moved == shipped, (kind, name)
    assert (fixtures / "data/penguins/penguins.csv").read_bytes() == (
        template / "data/penguins/penguins.csv"
    ).read_bytes()
    assert (clone / "models/README.md").is_file(), "models/ must survive a commit (root finding)"
    answers = yaml.safe_load((clone / ".mlops-template.yaml").read_text())
    assert answers["aws_account_id"] == "210987654321", "quoted: an id is not a number"
    assert answers["keep_examples"] is False
    assert answers["template"] == {
        "url": template.as_uri(),
        "commit": git(template, "rev-parse", "HEAD").strip(),
    }


def test_running_init_again_changes_nothing(clone: Path) -> None:
    assert mlops(clone, "init", *flags(), "--drop-examples").exit_code == 0
    git(clone, "add", "--all")
    git(clone, "commit", "--quiet", "-m", "adopt")  # a later HEAD must not move the base
    before = snapshot(clone)

    again = mlops(clone, "init", *flags(), "--drop-examples")
    recorded = mlops(clone, "init")  # no flags: the recorded answers

    assert again.exit_code == 0 and recorded.exit_code == 0, again.output + recorded.output
    assert "already adopted" in recorded.stderr
    assert snapshot(clone) == before


@pytest.mark.parametrize(
    ("bad", "field", "hint"),
    [
        ({"aws_account_id": "12345678901"}, "aws_account_id", "exactly 12 digits"),
        ({"aws_account_id": "21098765432x"}, "aws_account_id", "exactly 12 digits"),
        ({"aws_region": "europe-west"}, "aws_region", "looks like eu-west-1"),
        ({"aws_region": "EU-WEST-1"}, "aws_region", "looks like eu-west-1"),
        ({"aws_region": "us-gov-west-1"}, "aws_region", "commercial AWS partition"),
        ({"github_repository": "ml-platform"}, "github_repository", "owner/name"),
        ({"github_repository": "acme/ml platform"}, "github_repository", "owner/name"),
        ({"github_repository": "acme/.."}, "github_repository", "owner/name"),
        ({"project_name": "Fraud ML"}, "project_name", "lower case"),
        ({"serving_target": "ecs"}, "serving_target", "sagemaker"),
        ({"project_name": "aws"}, "project_name", "provider's config namespace"),
        ({"environments": "dev,Prod"}, "environments", "lower case letters"),
        ({"environments": "dev,,prod"}, "environments", "lower case letters"),
        ({"environments": "dev,prod,dev"}, "environments", "each environment once"),
        ({"environments": "a,b,c,d,e,f,g"}, "environments", "1 to 6 environment names"),
        # Unquoted in the answers file and the workflows' lists, these would be booleans or null.
        ({"environments": "dev,on,null"}, "environments", "boolean or null in YAML"),
        ({"project_name": "true"}, "project_name", "boolean or null in YAML"),
    ],
    ids=[
        "account-11-digits",
        "account-letter",
        "region-shape",
        "region-upper-case",
        "region-govcloud",
        "repository-no-owner",
        "repository-space",
        "repository-dot-dot",
        "project-name",
        "serving-target",
        "project-name-a-provider",
        "environment-upper-case",
        "environment-empty",
        "environment-repeated",
        "environments-too-many",
        "environment-a-yaml-keyword",
        "project-name-a-yaml-keyword",
    ],
)
def test_a_bad_answer_is_rejected_naming_its_field_and_nothing_is_written(
    clone: Path, bad: dict[str, str], field: str, hint: str
) -> None:
    before = snapshot(clone)

    result = mlops(clone, "init", *flags(**bad), "--keep-examples")

    assert result.exit_code == 2, result.output
    assert field in result.stderr and hint in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(clone) == before


def test_dry_run_lists_the_changes_and_writes_nothing(clone: Path) -> None:
    before = snapshot(clone)

    # A region no checkout has yet: the stack files change even in an adopted repository.
    result = mlops(clone, "init", *flags(aws_region="ap-south-2"), "--drop-examples", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "write Pulumi.prod.yaml" in result.stdout
    assert "move models/penguins to tests/examples/models/penguins" in result.stdout
    assert snapshot(clone) == before


def test_a_missing_answer_without_a_terminal_names_its_flag(clone: Path) -> None:
    before = snapshot(clone)
    answers = {k: v for k, v in NON_DEFAULT.items() if k != "--aws-region"}

    result = mlops(clone, "init", *[x for kv in answers.items() for x in kv], "--keep-examples")

    assert result.exit_code == 2
    assert "aws_region" in result.stderr and "--aws-region" in result.stderr
    assert snapshot(clone) == before


# Everywhere: the stacks, the workflows and the suites that plan against the team's pins.
CHAIN_SUITES = (
    "tests/infra",
    "tests/workflows/test_workflow_triggers.py",
    "tests/e2e/test_status.py::test_environments_are_listed_in_the_order_versions_travel_"
    "through_them",
    "tests/workflows/test_workflow_hostile_inputs.py::test_deleting_a_pinned_model_fails_the_plan",
)
# With the examples kept in models/ the code suites see what this checkout's see, but for the
# environments: only the suites that name or promote through environments run again.
ENVIRONMENT_SUITES = (
    "tests/code/cli",
    "tests/code/core/test_pins.py",
    "tests/code/gitops",
    "tests/code/stages/test_gates.py",
    "tests/code/stages/test_promote.py",
    "tests/code/stages/test_promote_pins_only.py",
)
# With the examples moved to the tests' fixture folder, every suite that trains them runs.
EXAMPLE_SUITES = ("tests/code", "tests/data")


@pytest.mark.parametrize(
    ("examples", "environments", "counts", "suites"),
    [
        (
            "--keep-examples",
            "qa,staging,production",
            "2 models, 3 environments",
            ENVIRONMENT_SUITES,
        ),
        ("--drop-examples", "dev,prod", "0 models, 2 environments", EXAMPLE_SUITES),
    ],
    ids=["examples-kept-three-other-environments", "examples-dropped-two-environments"],
)
def test_the_adopted_repository_passes_its_quick_checks(
    clone: Path, examples: str, environments: str, counts: str, suites: tuple[str, ...]
) -> None:
    """Non-default answers: the clone's check, schemas and its quick suites, which train, plan
    and diff the examples wherever they are (models/ or the tests' fixture folder) and hold the
    stacks and workflows of whatever environments the team chose to the same policies."""
    adopted = mlops(clone, "init", *flags(environments=environments), examples)
    assert adopted.exit_code == 0, adopted.output

    checked = mlops(clone, "check")
    schemas = mlops(clone, "schema", "--check")
    ran = run_tests(clone, *suites, *CHAIN_SUITES, timeout=300)

    assert checked.exit_code == 0 and counts in checked.stderr, checked.output
    assert schemas.exit_code == 0, schemas.output
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert " passed" in ran.stdout and " skipped" not in ran.stdout, ran.stdout[-500:]


def test_dropping_the_examples_drops_their_pins(clone: Path) -> None:
    """No environment may keep serving a model the repository no longer deploys."""
    prod = clone / "environments/prod.yaml"
    data = yaml.safe_load(prod.read_text())
    record = {"run_id": "r", "fingerprint": "f", "data_fingerprint": "d", "git_commit": "c"}
    record |= {"promoted_at": "2026-11-25T10:00:00+00:00", "promoted_by": "tests"}
    data["models"] = {
        name: {"version": "3", "model_uri": f"models:/{name}/3", **record} for name in EXAMPLES
    }
    prod.write_text(yaml.safe_dump(data, sort_keys=False))

    result = mlops(clone, "init", *flags(), "--drop-examples")

    assert result.exit_code == 0, result.output
    assert "write environments/prod.yaml" in result.stdout
    assert yaml.safe_load(prod.read_text())["models"] == {}
    assert mlops(clone, "check").exit_code == 0


def test_keeping_the_examples_after_dropping_them_is_refused(clone: Path) -> None:
    """Else keep_examples: true is recorded while the examples stay fixtures in tests/examples."""
    dropped = mlops(clone, "init", *flags(), "--drop-examples")
    assert dropped.exit_code == 0, dropped.output
    before = snapshot(clone)

    result = mlops(clone, "init", "--keep-examples")

    assert result.exit_code == 2, result.output
    assert "keep_examples" in result.stderr and "--drop-examples" in result.stderr, result.stderr
    assert snapshot(clone) == before


def test_without_the_examples_the_first_model_starts_from_a_csv(clone: Path) -> None:
    """Dropping the examples also drops them from the workflows; new-model adds the first one
    back to the dispatch choices, and the clone checks clean."""
    assert mlops(clone, "init", *flags(), "--drop-examples").exit_code == 0
    retrain = clone / ".github/workflows/retrain.yml"
    dropped = yaml.safe_load(retrain.read_text())
    empty = mlops(clone, "check")
    csv = clone.parent / "claims.csv"
    rows = (
        f"{10 + i},{'north' if i % 3 else 'south'},{'yes' if i % 4 == 0 else 'no'}\n"
        for i in range(40)
    )
    csv.write_text("amount,region,fraud\n" + "".join(rows))

    dataset = mlops(clone, "new-dataset", "claims", "--from-csv", str(csv))
    scaffold = mlops(
        clone,
        *("new-model", "fraud", "--dataset", "claims", "--task", "classification"),
        *("--target", "fraud"),
    )
    checked = mlops(clone, "check")
    choices = run_tests(
        clone, "tests/workflows/test_workflow_triggers.py::test_dispatch_choices_list_every_model"
    )

    # PyYAML reads the `on:` key as True. GitHub rejects a choice with no options: until the
    # first model the input is a plain string.
    assert dropped[True]["workflow_dispatch"]["inputs"]["model"] == {
        "description": "Model to retrain.",
        "type": "string",
        "required": True,
    }
    assert "schedule" not in dropped[True], "the examples' crons went, and the empty key"
    assert empty.exit_code == 0 and "0 models" in empty.stderr, empty.output
    assert dataset.exit_code == 0, dataset.output
    assert scaffold.exit_code == 0, scaffold.output
    assert "target: kubernetes" in (clone / "models/fraud/model.yaml").read_text()
    assert checked.exit_code == 0 and "1 models" in checked.stderr, checked.output
    assert "type: choice\n        options: [fraud]\n" in retrain.read_text()
    assert choices.returncode == 0, choices.stdout[-2000:]


def workflow(clone: Path, name: str) -> dict[Any, Any]:
    return yaml.safe_load((clone / ".github/workflows" / name).read_text())


def test_other_environments_become_the_promotion_chain_everywhere(clone: Path) -> None:
    """qa, staging, production: qa is the scratch stack, main's versions go to staging, and
    production promotes from staging behind an approval, in pins, stacks and workflows."""
    result = mlops(clone, "init", *flags(environments="qa,staging,production"), "--keep-examples")

    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in (clone / "environments").glob("*.yaml")) == [
        "production",
        "qa",
        "staging",
    ]
    assert sorted(p.name for p in clone.glob("Pulumi.*.yaml")) == [
        "Pulumi.production.yaml",
        "Pulumi.qa.yaml",
        "Pulumi.staging.yaml",
    ]
    pins = {p.stem: yaml.safe_load(p.read_text()) for p in (clone / "environments").glob("*.yaml")}
    chain = {n: (e["promote_from"], e["champion"], e["requires_approval"]) for n, e in pins.items()}
    assert chain == {
        "qa": (None, False, False),
        "staging": (None, False, False),
        "production": ("staging", True, True),
    }
    header = (clone / "environments/qa.yaml").read_text().splitlines()[:2]
    assert header[1] == "# Which model version runs in the qa environment.", header
    stacks = {
        name: yaml.safe_load((clone / f"Pulumi.{name}.yaml").read_text())["config"]
        for name in ("qa", "staging", "production")
    }
    # A new stack starts from the template's stack of the same role, renamed.
    assert stacks["production"]["fraud-ml:protectResources"] is True
    assert stacks["production"]["fraud-ml:deployEnvironments"] == ["production"]
    assert all("fraud-ml:deployBranches" not in stack for stack in stacks.values())
    assert stacks["qa"]["fraud-ml:deployEnvironments"] == ["qa"]
    assert stacks["qa"]["fraud-ml:scaledDown"] is True
    assert stacks["qa"]["aws:allowedAccountIds"] == ["210987654321"]
    assert "Shares the AWS account with production," in (clone / "Pulumi.qa.yaml").read_text()

    main = workflow(clone, "main.yml")["jobs"]
    assert main["infra-up"]["strategy"]["matrix"]["stack"] == ["qa", "staging", "production"]
    assert main["promote"]["with"]["environment"] == "staging"
    preview = workflow(clone, "pull-request.yml")["jobs"]["infra-preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["qa", "staging", "production"]
    assert workflow(clone, "retrain.yml")["jobs"]["retrain"]["with"]["environment"] == "staging"
    inputs = workflow(clone, "promote.yml")[True]["workflow_call"]["inputs"]
    assert inputs["environment"]["default"] == "staging"
    by_hand = workflow(clone, "promote-manual.yml")[True]["workflow_dispatch"]["inputs"]
    assert by_hand["environment"]["options"] == ["staging", "production"]
    assert by_hand["environment"]["default"] == "production"
    infra = workflow(clone, "infra.yml")[True]["workflow_call"]["inputs"]
    assert infra["stack"]["description"] == "qa, staging or production."
    # No name of the template's environments is left behind, not even in a comment.
    for path in [
        *clone.glob(".github/workflows/*.yml"),
        clone / "Pulumi.yaml",
        *clone.glob("Pulumi.*.yaml"),
    ]:
        for line in path.read_text().splitlines():
            assert not re.search(r"\b(dev|prod)\b", line), (path.name, line)


def test_changing_the_environments_again_moves_the_chain_and_keeps_the_pins(clone: Path) -> None:
    """A second adoption with another list: new files for new names, the removed ones go, the
    kept ones keep their pins and the team's settings, and a rerun changes nothing."""
    first = mlops(clone, "init", *flags(environments="qa,staging,production"), "--keep-examples")
    assert first.exit_code == 0, first.output
    staging = clone / "Pulumi.staging.yaml"
    staging.write_text(
        staging.read_text().replace("budgetMonthlyUsd: 300", "budgetMonthlyUsd: 250")
    )
    pins = clone / "environments/staging.yaml"
    data = yaml.safe_load(pins.read_text())
    record = {"run_id": "r", "fingerprint": "f", "data_fingerprint": "d", "git_commit": "c"}
    record |= {"promoted_at": "2026-11-25T10:00:00+00:00", "promoted_by": "tests"}
    data["models"] = {"penguins": {"version": "3", "model_uri": "models:/penguins/3", **record}}
    pins.write_text(yaml.safe_dump(data, sort_keys=False))
    scratch = clone / "environments/qa.yaml"  # a version tried in the scratch environment
    scratch_pins = yaml.safe_load(scratch.read_text()) | {"models": data["models"]}
    scratch.write_text(yaml.safe_dump(scratch_pins, sort_keys=False))

    result = mlops(clone, "init", "--environments", "staging,live")

    assert result.exit_code == 0, result.output
    assert (
        "remove Pulumi.qa.yaml" in result.stdout
        and "remove environments/production.yaml\n" in result.stdout
    )
    assert "remove environments/qa.yaml (and its pins: penguins v3)" in result.stdout
    assert sorted(p.stem for p in (clone / "environments").glob("*.yaml")) == ["live", "staging"]
    live = yaml.safe_load((clone / "environments/live.yaml").read_text())
    assert (live["promote_from"], live["champion"]) == ("staging", True)
    assert "budgetMonthlyUsd: 250" in staging.read_text(), "the team's stack setting stays"
    assert yaml.safe_load(pins.read_text())["models"]["penguins"]["version"] == "3"
    live_stack = yaml.safe_load((clone / "Pulumi.live.yaml").read_text())["config"]
    assert live_stack["fraud-ml:deployEnvironments"] == ["live"]
    assert live_stack["fraud-ml:protectResources"] is True, "started from production's stack"
    assert "[staging, live]" in (clone / ".mlops-template.yaml").read_text()
    assert mlops(clone, "check").exit_code == 0

    before = snapshot(clone)
    again = mlops(clone, "init")
    assert again.exit_code == 0 and "already adopted" in again.stderr, again.output
    assert snapshot(clone) == before


def test_growing_a_chain_of_production_alone_starts_from_the_templates_stacks(
    clone: Path,
) -> None:
    """With production as the only stack file left, a new scratch or staging stack must not
    copy it (protected, approval-only, owner of the account's shared resources): it starts from
    the template's own, read from the commit the repository was adopted from."""
    alone = mlops(clone, "init", *flags(environments="live"), "--keep-examples")
    assert alone.exit_code == 0, alone.output
    git(clone, "add", "--all")
    git(clone, "commit", "--quiet", "-m", "adopted with production alone")

    grown = mlops(clone, "init", "--environments", "dev,qa,live")

    assert grown.exit_code == 0, grown.output
    for name, budget in (("dev", 100), ("qa", 300)):
        stack = yaml.safe_load((clone / f"Pulumi.{name}.yaml").read_text())["config"]
        assert stack["fraud-ml:deployEnvironments"] == [name]
        assert "fraud-ml:deployBranches" not in stack, "deploy trust is environment-only"
        assert stack["fraud-ml:protectResources"] is False, name
        assert stack["fraud-ml:ownsAccountResources"] is False, name
        assert stack["fraud-ml:budgetMonthlyUsd"] == budget, name
        assert stack["aws:region"] == NON_DEFAULT["--aws-region"]
    assert "Production" not in (clone / "Pulumi.qa.yaml").read_text()
    assert mlops(clone, "init").stdout == "", "a rerun changes nothing"
