"""`mlops report --run-id`: the pull request's section describes the job's own run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app

pytestmark = pytest.mark.code


@pytest.mark.parametrize("models", [[], ["penguins", "seattle_weather"]])
def test_a_run_id_names_exactly_one_model(models: list[str], cli_env: dict[str, str]) -> None:
    done = CliRunner().invoke(
        app, ["report", *models, "--run-id", "0" * 32, "--part", "--output", "out.md"]
    )
    assert done.exit_code == 2, done.output
    assert "--run-id" in done.output and "exactly one model" in done.output


def test_an_unknown_run_id_is_a_clear_error(cli_env: dict[str, str]) -> None:
    done = CliRunner().invoke(
        app, ["report", "penguins", "--run-id", "0" * 32, "--part", "--output", "out.md"]
    )
    assert done.exit_code == 2, done.output
    assert "0" * 32 in done.output
