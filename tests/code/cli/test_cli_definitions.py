"""`mlops check` (pipelines/cli/definitions.py) refuses, naming file and field, what a deploy
would fail on, and exits 2 (bad input) for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from pipelines.cli.main import app
from pipelines.core.deploy_limits import cloud_names

pytestmark = pytest.mark.code


def mlops_check(repo: Path) -> Result:
    env = {"MLOPS_ROOT": str(repo), "MLOPS_HOME": str(repo / ".mlops"), "COLUMNS": "250"}
    return CliRunner().invoke(app, ["check"], env=env)


def edit_model(repo: Path, model: str, **changes: Any) -> Path:
    """Set dotted keys (``deployment__target`` for deployment.target) of a model.yaml."""
    path = repo / "models" / model / "model.yaml"
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rename_model(repo: Path, old: str, new: str) -> Path:
    (repo / "models" / old).rename(repo / "models" / new)
    return edit_model(repo, new, name=new)


def longest_name(environment: str, target: str) -> int:
    """The longest model name whose every derived name fits, in one environment."""
    return max(
        length
        for length in range(1, 64)
        if all(len(n.name) <= n.limit for n in cloud_names("m" * length, environment, target))
    )


def test_the_examples_pass(repo: Path) -> None:
    result = mlops_check(repo)
    assert result.exit_code == 0, result.output


def test_a_model_name_too_long_for_an_environment_is_refused_naming_the_longest(
    repo: Path,
) -> None:
    environments = [p.stem for p in (repo / "environments").glob("*.yaml")]
    longest_env = max(environments, key=len)
    fits = min(longest_name(e, "sagemaker") for e in environments)
    ok = "w" + "x" * (fits - 1)
    rename_model(repo, "seattle_weather", ok)
    assert mlops_check(repo).exit_code == 0

    too_long = ok + "x"
    path = rename_model(repo, ok, too_long)
    result = mlops_check(repo)
    assert result.exit_code == 2
    assert f"{path}: name: '{too_long}' is too long for environment '{longest_env}'" in (
        result.output
    )
    assert f"Use a name of at most {fits} characters" in result.output


def test_canary_on_a_one_instance_sagemaker_fleet_is_refused(repo: Path) -> None:
    path = edit_model(
        repo,
        "penguins",
        deployment__target="sagemaker",
        deployment__instance_count=1,
        deployment__autoscaling={"min_instances": 1, "max_instances": 3},
        deployment__strategy={"type": "canary", "canary_percent": 10},
    )
    result = mlops_check(repo)
    assert result.exit_code == 2
    assert f"{path}: deployment.autoscaling.min_instances: canary traffic shifting" in result.output


def test_a_sagemaker_rollout_longer_than_a_deploy_waits_is_refused(repo: Path) -> None:
    path = edit_model(
        repo, "seattle_weather", deployment__strategy={"type": "canary", "bake_minutes": 60}
    )
    result = mlops_check(repo)
    assert result.exit_code == 2
    assert f"{path}: deployment.strategy.bake_minutes: a canary rollout on SageMaker" in (
        result.output
    )


REPO_ROOT = Path(__file__).resolve().parents[3]
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC"


def _pin_penguins_on_kubernetes(repo: Path, **config: str) -> Path:
    """penguins on Kubernetes, pinned in the first environment (whatever the team named it),
    whose stack file holds ``config``."""
    from pipelines.core.pins import (
        Pin,
        in_promotion_order,
        list_environments,
        load_environment,
        save_environment,
        with_pin,
    )

    edit_model(repo, "penguins", deployment__target="kubernetes")
    environments = [load_environment(repo / "environments", name)
                    for name in list_environments(repo / "environments")]  # fmt: skip
    environment = in_promotion_order(environments)[0]
    stack = environment.environment
    pin = Pin(
        version="1",
        run_id="r",
        model_uri="models:/penguins/1",
        fingerprint="f",
        data_fingerprint="d",
        git_commit="c",
        promoted_at="2026-12-06T00:00:00Z",
    )
    save_environment(repo / "environments", with_pin(environment, "penguins", pin))
    (repo / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    stack_file = repo / f"Pulumi.{stack}.yaml"
    # Only the settings under test: the fixture's environments need not match the repository's.
    # The keys are in the project's namespace, which adoption renames.
    project = yaml.safe_load((repo / "Pulumi.yaml").read_text())["name"]
    data = {
        "config": {"aws:region": "us-east-1", **{f"{project}:{k}": v for k, v in config.items()}}
    }
    stack_file.write_text(yaml.safe_dump(data))
    return stack_file


def test_a_kubernetes_model_pinned_where_the_cluster_is_not_configured_is_refused(
    repo: Path,
) -> None:
    stack_file = _pin_penguins_on_kubernetes(repo, eksClusterName="ml-serving")
    result = mlops_check(repo)
    assert result.exit_code == 2
    assert f"{stack_file}: eksOidcProviderArn: eksOidcProviderArn is not set" in result.output


def test_a_kubernetes_model_with_its_cluster_settings_passes(repo: Path) -> None:
    _pin_penguins_on_kubernetes(
        repo,
        eksClusterName="ml-serving",
        eksOidcProviderArn=f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}",
        eksOidcIssuer=ISSUER,
    )
    result = mlops_check(repo)
    assert result.exit_code == 0, result.output
