"""`mlops deploy-image`: an `up` that built nothing keeps the image the stack runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.core.errors import MlopsError
from pipelines.gitops.deploy_image import choose_image

pytestmark = pytest.mark.code

BUILT = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:" + "a" * 40
RUNNING = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving:" + "b" * 40
ENDPOINTS = json.dumps({"penguins": "mlops-prod-penguins"})


def test_an_image_built_by_this_run_is_the_one_applied() -> None:
    choice = choose_image("dev", BUILT, RUNNING, ENDPOINTS)
    assert (choice.image, choice.source) == (BUILT, "built by this run")


def test_a_deploy_that_built_nothing_keeps_the_stacks_current_image() -> None:
    choice = choose_image("prod", "", RUNNING, ENDPOINTS)
    assert (choice.image, choice.source) == (RUNNING, "the stack's current image")


def test_a_stack_without_endpoints_or_image_gets_none() -> None:
    assert choose_image("dev", "", "", "").image == ""
    assert choose_image("dev", "", "", "{}").image == ""


def test_a_stack_serving_endpoints_without_a_recorded_image_is_refused() -> None:
    with pytest.raises(MlopsError, match="serves penguins but its outputs record no image"):
        choose_image("prod", "", "", ENDPOINTS)


@pytest.mark.parametrize("bad", ["latest", "mlops-serving", "repo/x:tag with space", "a/b:"])
def test_a_malformed_image_is_refused_naming_the_option(bad: str) -> None:
    with pytest.raises(MlopsError, match="--built"):
        choose_image("dev", bad, "", "")


def test_a_digest_pinned_image_is_accepted() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-serving@sha256:" + "0" * 64
    assert choose_image("dev", "", image, "").image == image


def test_endpoints_output_that_is_not_json_names_the_stack_and_output() -> None:
    with pytest.raises(MlopsError, match="prod: output endpoints"):
        choose_image("prod", "", "", "{not json")


def test_cli_writes_the_choice_for_the_next_step(tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    result = CliRunner().invoke(
        app,
        ["deploy-image", "--stack", "prod", "--current", RUNNING,
         "--current-endpoints", ENDPOINTS, "--github-output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text() == f"image={RUNNING}\n"
    assert "the stack's current image" in result.output


def test_cli_refusal_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    result = CliRunner().invoke(
        app,
        ["deploy-image", "--stack", "prod", "--current-endpoints", ENDPOINTS,
         "--github-output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert not out.exists()
