"""`mlops template update`: template version B reaches a repository adopted at version A,
rewritten with its answers, without touching what the team added or changed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from template_helpers import (
    NOT_SHIPPED,
    REPO_ROOT,
    extract_commit,
    flags,
    git,
    mlops,
    release_commit,
    run_tests,
)

from pipelines.template.template_update import has_commit

pytestmark = pytest.mark.code

# The last template commit before pipelines/ became subpackages (a flat pipelines/ with cli.py).
FLAT_LAYOUT = "dc8f7747e355b995ad48e964496a9f85dbe101f7"
# The last commit of the move to subpackages (architecture issue), released as version B.
SUBPACKAGES = "269d5b86faa3d383d00369178cbc0cafd1def0b3"


def adopted_and_committed(template: Path, tmp_path: Path, *more: str) -> Path:
    """A team repository: cloned at version A, adopted, with its own changes, all committed."""
    team = tmp_path / "team"
    git(tmp_path, "clone", "--quiet", template.as_uri(), str(team))
    adopted = mlops(team, "init", *flags(), "--keep-examples", *more)
    assert adopted.exit_code == 0, adopted.output
    # The team's own work: a tuned model and a document. (A new model would do as well, but
    # tests/infra pins the committed model set to the two examples.)
    model = team / "models/penguins/model.yaml"
    model.write_text(model.read_text().replace("n_estimators: 100", "n_estimators: 150"))
    (team / "docs/team-notes.md").write_text("# Our notes\n")
    staging = team / "Pulumi.staging.yaml"  # a setting of the team's own
    text = staging.read_text()
    assert text.count("budgetMonthlyUsd: 300") == 1
    staging.write_text(text.replace("budgetMonthlyUsd: 300", "budgetMonthlyUsd: 250"))
    git(team, "add", "--all")
    git(team, "commit", "--quiet", "-m", "adopt the template, tune penguins")
    return team


def template_region(template: Path) -> str:
    """The AWS region the template's workflows name before adoption rewrites it."""
    stack = yaml.safe_load((template / "Pulumi.prod.yaml").read_text())
    return str(stack["config"]["aws:region"])


def release_version_b(template: Path) -> str:
    """Version B: a step next to a rewritten line, a new doc, a stack setting, adoption code."""
    image = template / ".github/workflows/image.yml"
    text = image.read_text()
    region = template_region(template)  # us-east-1, or the region of an adopted repository
    assert text.count(f"aws-region: {region}\n") == 1
    image.write_text(
        text.replace(
            f"aws-region: {region}\n",
            f"aws-region: {region}\n          role-duration-seconds: 900\n",
        )
    )
    (template / "docs/upgrading.md").write_text("# Upgrading\n\nNew in version B.\n")
    prod = template / "Pulumi.prod.yaml"
    prod.write_text(
        prod.read_text().replace("captureRetentionDays: 180", "captureRetentionDays: 365")
    )
    # B's adoption code changed too: B must be rendered with B's code, not the team's copy of A's.
    adopt = template / "pipelines/template/adopt.py"
    text = adopt.read_text()
    assert text.count("# The answers this repository gave") == 1
    adopt.write_text(
        text.replace("# The answers this repository gave", "# The answers this repo gave")
    )
    git(template, "add", "--all")
    git(template, "commit", "--quiet", "-m", "template version B")
    return git(template, "rev-parse", "HEAD").strip()


@pytest.fixture
def own_template(template: Path, tmp_path: Path) -> Path:
    """A copy of the session's template that this test may release new versions of."""
    copy = tmp_path / "template"
    git(tmp_path, "clone", "--quiet", template.as_uri(), str(copy))
    return copy


def test_update_merges_the_new_version_rendered_with_the_answers(
    own_template: Path, tmp_path: Path
) -> None:
    team = adopted_and_committed(own_template, tmp_path)
    region = template_region(own_template)
    version_b = release_version_b(own_template)

    result = mlops(team, "template", "update")

    assert result.exit_code == 0, result.output
    image = (team / ".github/workflows/image.yml").read_text()
    assert "aws-region: eu-west-1\n          role-duration-seconds: 900\n" in image
    assert region == "eu-west-1" or region not in image, "the template's region is replaced"
    assert (team / "docs/upgrading.md").read_text() == "# Upgrading\n\nNew in version B.\n"
    staging = yaml.safe_load((team / "Pulumi.staging.yaml").read_text())["config"]
    prod = yaml.safe_load((team / "Pulumi.prod.yaml").read_text())["config"]
    assert staging["fraud-ml:budgetMonthlyUsd"] == 250, "the team's own setting is kept"
    assert prod["fraud-ml:captureRetentionDays"] == 365, "the template's change arrives"
    assert prod["aws:region"] == "eu-west-1"
    assert "n_estimators: 150" in (team / "models/penguins/model.yaml").read_text()
    assert (team / "docs/team-notes.md").is_file(), "the team's files are kept"
    recorded = (team / ".mlops-template.yaml").read_text()
    assert recorded.startswith("# The answers this repo gave"), "rendered with B's own code"
    assert yaml.safe_load(recorded)["template"]["commit"] == version_b, "next update starts at B"
    staged = set(git(team, "diff", "--cached", "--name-only").split())
    assert staged == {
        ".github/workflows/image.yml",
        ".mlops-template.yaml",
        "Pulumi.prod.yaml",
        "docs/upgrading.md",
        "pipelines/template/adopt.py",
    }
    assert git(team, "log", "-1", "--format=%s").strip() == "adopt the template, tune penguins"

    checked = mlops(team, "check")
    infra = run_tests(team, "tests/infra/test_infra_stacks.py")
    assert checked.exit_code == 0 and "2 models" in checked.stderr, checked.output
    assert infra.returncode == 0, infra.stdout[-3000:]

    git(team, "commit", "--quiet", "-m", "template update")
    again = mlops(team, "template", "update")
    assert again.exit_code == 0 and "already at template" in again.stderr, again.output


def test_update_refuses_a_dirty_working_tree_and_changes_nothing(
    own_template: Path, tmp_path: Path
) -> None:
    team = adopted_and_committed(own_template, tmp_path)
    release_version_b(own_template)
    (team / "notes.txt").write_text("work in progress\n")

    result = mlops(team, "template", "update")

    assert result.exit_code == 2
    assert "uncommitted changes" in result.stderr
    assert not (team / "docs/upgrading.md").exists()
    assert git(team, "status", "--porcelain").strip() == "?? notes.txt"


def test_a_conflicting_change_is_left_for_the_team_to_resolve(
    own_template: Path, tmp_path: Path
) -> None:
    team = adopted_and_committed(own_template, tmp_path)
    for repo, value in ((team, "250"), (own_template, "999")):
        prod = repo / "Pulumi.prod.yaml"
        prod.write_text(
            prod.read_text().replace("budgetMonthlyUsd: 2000", f"budgetMonthlyUsd: {value}")
        )
        git(repo, "commit", "--quiet", "-am", "change the prod budget")

    result = mlops(team, "template", "update")

    assert result.exit_code == 2
    assert "conflicts in Pulumi.prod.yaml" in result.stderr, result.stderr
    assert "<<<<<<<" in (team / "Pulumi.prod.yaml").read_text()


def test_a_repository_without_the_templates_history_updates_from_the_recorded_commit(
    own_template: Path, tmp_path: Path
) -> None:
    """GitHub's "Use this template" copies the files into a new history: init is told which
    template commit they are, and the update diffs from there."""
    version_a = git(own_template, "rev-parse", "HEAD").strip()
    team = tmp_path / "team"
    shutil.copytree(own_template, team, ignore=NOT_SHIPPED)
    git(team, "init", "--quiet", "--initial-branch=main")
    git(team, "add", "--all")
    git(team, "commit", "--quiet", "-m", "Initial commit")
    adopted = mlops(
        team,
        "init",
        *flags(),
        "--keep-examples",
        *("--template-url", own_template.as_uri(), "--template-commit", version_a),
    )
    git(team, "add", "--all")
    git(team, "commit", "--quiet", "-m", "adopt")
    release_version_b(own_template)

    result = mlops(team, "template", "update")

    assert adopted.exit_code == 0, adopted.output
    assert result.exit_code == 0, result.output
    assert (team / "docs/upgrading.md").is_file()
    assert (
        "aws-region: eu-west-1\n          role-duration-seconds: 900\n"
        in (team / ".github/workflows/image.yml").read_text()
    )


def test_without_the_examples_a_template_change_to_them_updates_the_test_fixtures(
    own_template: Path, tmp_path: Path
) -> None:
    """Dropped examples live on in tests/examples: the template's next version of an example
    lands there, never back in the team's models/."""
    team = tmp_path / "team"
    git(tmp_path, "clone", "--quiet", own_template.as_uri(), str(team))
    assert mlops(team, "init", *flags(), "--drop-examples").exit_code == 0
    git(team, "add", "--all")
    git(team, "commit", "--quiet", "-m", "adopt without the examples")
    model = own_template / "models/penguins/model.yaml"
    model.write_text(model.read_text().replace("n_estimators: 100", "n_estimators: 120"))
    git(own_template, "commit", "--quiet", "-am", "template version B: tune penguins")

    result = mlops(team, "template", "update")

    assert result.exit_code == 0, result.output
    fixture = team / "tests/examples/models/penguins/model.yaml"
    assert "n_estimators: 120" in fixture.read_text()
    assert not (team / "models/penguins").exists()
    staged = set(git(team, "diff", "--cached", "--name-only").split())
    assert staged == {".mlops-template.yaml", "tests/examples/models/penguins/model.yaml"}


def without_the_pulumi_rename(template: Path) -> str:
    """A version of the template from before `mlops init` renamed the Pulumi project (and the
    stack files' config namespace) after the project: adoption code without that rule."""
    adopt = template / "pipelines/template/adopt.py"
    text = adopt.read_text()
    rule = "    rules += _pulumi_project_rewrites(answers, project_was)\n"
    assert text.count(rule) == 1
    adopt.write_text(text.replace(rule, ""))
    # And the project as that template shipped it (this one may be an adopted repository).
    project = template / "Pulumi.yaml"
    name = yaml.safe_load(project.read_text())["name"]
    for path in [project, *template.glob("Pulumi.*.yaml")]:
        text = re.sub(r"^name: .*$", "name: mlops", path.read_text(), flags=re.M)
        path.write_text(re.sub(rf"^(\s+){re.escape(name)}:(?=\w)", r"\1mlops:", text, flags=re.M))
    git(template, "commit", "--quiet", "-am", "template version A: Pulumi project stays mlops")
    return git(template, "rev-parse", "HEAD").strip()


def test_an_update_that_renames_the_pulumi_project_keeps_the_teams_stack_settings(
    own_template: Path, tmp_path: Path
) -> None:
    """Adopted before the rename, the team's stack files have `mlops:` keys, one with its own
    value; the version that renames arrives without a conflict on that line, and renamed."""
    without_the_pulumi_rename(own_template)
    team = adopted_and_committed(own_template, tmp_path)
    assert yaml.safe_load((team / "Pulumi.yaml").read_text())["name"] == "mlops"
    adopt = (
        own_template / "pipelines/template/adopt.py"
    )  # version B: the rename, and a stack change
    git(own_template, "checkout", "--quiet", "HEAD~1", "--", "pipelines/template/adopt.py")
    git(own_template, "commit", "--quiet", "-m", "template version B: the Pulumi rename")
    release_version_b(own_template)
    assert "_pulumi_project_rewrites(answers, project_was)\n" in adopt.read_text()

    result = mlops(team, "template", "update")

    assert result.exit_code == 0, result.output
    assert yaml.safe_load((team / "Pulumi.yaml").read_text())["name"] == "fraud-ml"
    for stack in ("dev", "staging", "prod"):
        config = yaml.safe_load((team / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert {key.split(":")[0] for key in config} == {"aws", "fraud-ml"}, stack
    staging = yaml.safe_load((team / "Pulumi.staging.yaml").read_text())["config"]
    prod = yaml.safe_load((team / "Pulumi.prod.yaml").read_text())["config"]
    assert staging["fraud-ml:budgetMonthlyUsd"] == 250, "the team's own setting is kept"
    assert prod["fraud-ml:captureRetentionDays"] == 365, "the template's change arrives"
    staged = set(git(team, "diff", "--cached", "--name-only").split())
    assert {"Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"} <= staged
    infra = run_tests(team, "tests/infra/test_infra_stacks.py")
    assert infra.returncode == 0, infra.stdout[-3000:]


def test_a_template_change_to_its_prod_stack_reaches_the_teams_production_stack(
    own_template: Path, tmp_path: Path
) -> None:
    """With other environments, the template's stacks are rendered as the team's: prod's new
    setting arrives in the stack file of the team's production environment."""
    team = adopted_and_committed(own_template, tmp_path, "--environments", "staging,production")
    release_version_b(own_template)

    result = mlops(team, "template", "update")

    assert result.exit_code == 0, result.output
    assert not (team / "Pulumi.prod.yaml").exists() and not (team / "Pulumi.dev.yaml").exists()
    production = yaml.safe_load((team / "Pulumi.production.yaml").read_text())["config"]
    assert production["fraud-ml:captureRetentionDays"] == 365
    staging = yaml.safe_load((team / "Pulumi.staging.yaml").read_text())["config"]
    assert staging["fraud-ml:budgetMonthlyUsd"] == 250
    assert "Pulumi.production.yaml" in set(git(team, "diff", "--cached", "--name-only").split())


def test_a_repository_adopted_before_the_subpackages_updates_to_them(tmp_path: Path) -> None:
    """A team adopted the flat pipelines/ and runs its own (old) `mlops template update`."""
    if not (has_commit(REPO_ROOT, FLAT_LAYOUT) and has_commit(REPO_ROOT, SUBPACKAGES)):
        pytest.skip(f"this checkout's history lacks template commit {FLAT_LAYOUT[:12]}")
    template = extract_commit(REPO_ROOT, FLAT_LAYOUT, tmp_path / "template")
    assert (template / "pipelines/cli.py").is_file(), "version A has the flat layout"
    team = adopted_and_committed(template, tmp_path)
    assert not (team / "pipelines/cli").exists()
    # Version B is the release that moved pipelines/ (later releases change the stack files the
    # team's adoption rewrote, which a real update reports as a conflict to resolve).
    release_commit(template, SUBPACKAGES, "template version B: pipelines/ as subpackages")

    result = mlops(team, "template", "update", timeout=300)

    assert result.exit_code == 0, result.output
    assert (team / "pipelines/cli/main.py").is_file()
    assert (team / "pipelines/core/definitions.py").is_file()
    assert not (team / "pipelines/cli.py").exists(), "the flat modules are gone"
    assert not (team / "pipelines/definitions.py").exists()
    assert "n_estimators: 150" in (team / "models/penguins/model.yaml").read_text()
    assert (team / "docs/team-notes.md").is_file(), "the team's files are kept"
    staging = yaml.safe_load((team / "Pulumi.staging.yaml").read_text())["config"]
    assert staging["fraud-ml:budgetMonthlyUsd"] == 250, "the team's own setting is kept"
    # The updated repository runs on the new layout: its CLI and its definition checks.
    checked = mlops(team, "check")
    assert checked.exit_code == 0 and "2 models" in checked.stderr, checked.output
    cli = run_tests(team, "tests/code/cli/test_main.py")
    assert cli.returncode == 0, cli.stdout[-3000:]
