"""`mlops sagemaker deregister-scaling` (``pipelines.aws.variant_scaling``) against SageMaker and
Application Auto Scaling as moto implements them, in-process; botocore's Stubber where a failure
must happen between two calls."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from examples_root import REPO_ROOT
from typer.testing import CliRunner

from pipelines.aws.sagemaker_flow import AwsError
from pipelines.aws.variant_scaling import (
    ACTIONS,
    DIMENSION,
    NAMESPACE,
    Deregistration,
    deregister,
    planned_endpoints,
    resource_id,
)
from pipelines.cli.main import app
from pipelines.core.conventions import endpoint_name
from pipelines.core.definitions import load_model
from pipelines.core.pins import Environment, Pin, list_environments, load_environment
from pipelines.core.pins import save_environment as save

pytestmark = pytest.mark.code

MODEL = "seattle_weather"  # its strategy shifts traffic by instance, as SageMaker allows
VARIANT = "AllTraffic"
ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"
PIN = {
    "version": "3",
    "run_id": "0123456789abcdef",
    "model_uri": f"models:/{MODEL}/3",
    "fingerprint": "f" * 16,
    "data_fingerprint": "d" * 16,
    "git_commit": "c" * 40,
    "promoted_at": "2026-11-25T10:00:00+00:00",
}


@dataclass
class Stack:
    """A scratch checkout whose stack pins MODEL on SageMaker, and the AWS it deploys to."""

    root: Path
    env: str
    sagemaker: Any
    autoscaling: Any

    @property
    def endpoint(self) -> str:
        return endpoint_name(MODEL, self.env)

    @property
    def planned_type(self) -> str:
        """model.yaml's instance type: what the program deploys on a full-size stack."""
        loaded = load_model(self.root / "models", self.root / "data", MODEL)
        return loaded.definition.deployment.instance_type

    def stack_config(self, **config: Any) -> None:
        project = yaml.safe_load((self.root / "Pulumi.yaml").read_text())["name"]
        values = {f"{project}:{key}": value for key, value in config.items()}
        (self.root / f"Pulumi.{self.env}.yaml").write_text(yaml.safe_dump({"config": values}))

    def set_deployment(self, **fields: str) -> None:
        path = self.root / "models" / MODEL / "model.yaml"
        data = yaml.safe_load(path.read_text())
        data["deployment"].update(fields)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def set_instance_type(self, instance_type: str) -> None:
        self.set_deployment(instance_type=instance_type)

    def go_live(self, variants: dict[str, str]) -> None:
        """The endpoint as an earlier `pulumi up` left it, running ``variants``."""
        self.sagemaker.create_model(
            ModelName="live-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img:1"}
        )
        self.sagemaker.create_endpoint_config(
            EndpointConfigName="live-config",
            ProductionVariants=[
                {
                    "VariantName": name,
                    "ModelName": "live-model",
                    "InstanceType": instance_type,
                    "InitialInstanceCount": 1,
                }
                for name, instance_type in variants.items()
            ],
        )
        self.sagemaker.create_endpoint(EndpointName=self.endpoint, EndpointConfigName="live-config")

    def register(self, variant: str = VARIANT) -> None:
        """The scalable target and target-tracking policy the program declares for a variant."""
        target = {
            "ServiceNamespace": NAMESPACE,
            "ResourceId": resource_id(self.endpoint, variant),
            "ScalableDimension": DIMENSION,
        }
        self.autoscaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=3)
        self.autoscaling.put_scaling_policy(
            PolicyName=f"{variant}-policy",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 200.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
            },
            **target,
        )

    def registered(self) -> set[str]:
        targets = self.autoscaling.describe_scalable_targets(ServiceNamespace=NAMESPACE)
        return {t["ResourceId"] for t in targets["ScalableTargets"]}

    def run(self, *options: str) -> tuple[Any, str | None]:
        """The command, and what it appended to its --github-output file (None: nothing)."""
        output = self.root / "github-output"
        output.unlink(missing_ok=True)
        wants_output = "--dry-run" not in options
        args = ["sagemaker", "deregister-scaling", "--env", self.env, *options]
        if wants_output:
            args += ["--github-output", str(output)]
        result = CliRunner().invoke(app, args)
        return result, output.read_text() if output.is_file() else None


def _pin(root: Path, env: str) -> None:
    environments = root / "environments"
    pinned = load_environment(environments, env)
    save(
        environments,
        Environment(**{**pinned.model_dump(), "models": {MODEL: Pin(**PIN)}}),
    )


@pytest.fixture
def stack(repo: Path, cli_env: dict[str, str], moto_aws: None) -> Iterator[Stack]:
    env = list_environments(repo / "environments")[0]
    shutil.copy(REPO_ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    _pin(repo, env)
    made = Stack(repo, env, boto3.client("sagemaker"), boto3.client("application-autoscaling"))
    made.stack_config(scaledDown=False)
    made.set_deployment(target="sagemaker")
    yield made


def _text(result: Any) -> str:
    return " ".join(result.output.split())


def test_a_registered_variant_whose_instance_type_changes_is_deregistered_and_up_refreshes(
    stack: Stack,
) -> None:
    live = stack.planned_type
    stack.go_live({VARIANT: live})
    stack.register()
    stack.set_instance_type("ml.c5.xlarge")  # the change a pull request merged in model.yaml

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert stack.registered() == set()
    message = _text(result)
    assert f"its instance type changes from {live} to ml.c5.xlarge" in message
    assert f"deregistered {resource_id(stack.endpoint, VARIANT)}" in message
    assert output == "refresh=true\n"


def test_a_variant_the_update_removes_is_deregistered_and_the_kept_one_stays(
    stack: Stack,
) -> None:
    stack.go_live({VARIANT: stack.planned_type, "Canary": stack.planned_type})
    stack.register()
    stack.register("Canary")

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert stack.registered() == {resource_id(stack.endpoint, VARIANT)}
    assert f"{stack.endpoint}/Canary: the deploy removes it" in _text(result)
    assert output == "refresh=true\n"


def test_a_scaled_down_stack_compares_with_its_small_instance_type(stack: Stack) -> None:
    """The live type is model.yaml's, but this stack deploys its scaledDownInstanceType."""
    stack.stack_config(scaledDown=True, scaledDownInstanceType="ml.t2.large")
    stack.go_live({VARIANT: stack.planned_type})
    stack.register()

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert stack.registered() == set()
    assert f"from {stack.planned_type} to ml.t2.large" in _text(result)
    assert output == "refresh=true\n"


def test_the_stack_files_keys_are_read_in_the_projects_namespace(stack: Stack) -> None:
    """An adopted repository's project has the team's name, and its stack files' keys too."""
    project = stack.root / "Pulumi.yaml"
    project.write_text(project.read_text().replace("name: ", "name: team-ml  # was: ", 1))
    stack.stack_config(scaledDown=True, scaledDownInstanceType="ml.t2.large")
    (planned,) = planned_endpoints(stack.root, stack.env)
    assert planned.variants == {VARIANT: "ml.t2.large"}


def test_an_unchanged_instance_type_is_left_registered(stack: Stack) -> None:
    stack.go_live({VARIANT: stack.planned_type})
    stack.register()

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert stack.registered() == {resource_id(stack.endpoint, VARIANT)}
    assert f"{stack.endpoint}/{VARIANT}: stays {stack.planned_type}" in _text(result)
    assert output == "refresh=false\n"


def test_a_removed_variant_that_is_not_registered_needs_nothing(stack: Stack) -> None:
    stack.go_live({VARIANT: stack.planned_type, "Canary": stack.planned_type})
    stack.register()

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert f"{stack.endpoint}/Canary: the deploy removes it; not registered" in _text(result)
    assert stack.registered() == {resource_id(stack.endpoint, VARIANT)}
    assert output == "refresh=false\n"


def test_an_endpoint_not_live_yet_needs_nothing(stack: Stack) -> None:
    stack.set_instance_type("ml.c5.xlarge")

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert f"{stack.endpoint}: not live yet" in _text(result)
    assert output == "refresh=false\n"


@pytest.mark.parametrize("changed", [False, True], ids=["same type", "new type"])
def test_a_target_already_gone_still_asks_for_the_refresh_that_registers_it_again(
    stack: Stack, changed: bool
) -> None:
    """A target deregistered by hand, or by a run whose `up` never refreshed (it failed or was
    stopped first): the state may still hold it, so the next deploy refreshes though nothing is
    left to deregister."""
    live = stack.planned_type
    stack.go_live({VARIANT: live})
    if changed:
        stack.register()
        stack.set_instance_type("ml.c5.xlarge")
        first, _ = stack.run()  # deregisters; its `up` then fails before the refresh
        assert first.exit_code == 0 and "deregistered" in first.output, first.output

    result, output = stack.run()

    assert result.exit_code == 0, result.output
    assert stack.registered() == set()
    assert "deregistering" not in result.output
    change = "changes from " + live + " to ml.c5.xlarge" if changed else f"stays {live}"
    assert f"{stack.endpoint}/{VARIANT}: {change}, and is not registered" in _text(result)
    assert "`pulumi up` refreshes and registers it again" in _text(result)
    assert output == "refresh=true\n"


def test_a_dry_run_says_what_it_would_deregister_and_changes_nothing(stack: Stack) -> None:
    stack.go_live({VARIANT: stack.planned_type})
    stack.register()
    stack.set_instance_type("ml.c5.xlarge")

    result, output = stack.run("--dry-run")

    assert result.exit_code == 0, result.output
    assert f"would deregister: {stack.endpoint}/{VARIANT}" in _text(result)
    assert "would run with --refresh" in _text(result)
    assert stack.registered() == {resource_id(stack.endpoint, VARIANT)}
    assert output is None


def test_a_dry_run_writes_no_refresh_signal(stack: Stack) -> None:
    result = CliRunner().invoke(
        app,
        ["sagemaker", "deregister-scaling", "--env", stack.env, "--dry-run",
         "--github-output", str(stack.root / "out")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--dry-run changes nothing" in _text(result)
    assert not (stack.root / "out").exists()


def test_a_stack_without_sagemaker_endpoints_asks_aws_nothing(
    repo: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(REPO_ROOT / "Pulumi.yaml", repo / "Pulumi.yaml")
    env = list_environments(repo / "environments")[0]  # nothing pinned
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any call would fail
    output = repo / "github-output"

    result = CliRunner().invoke(
        app, ["sagemaker", "deregister-scaling", "--env", env, "--github-output", str(output)]
    )

    assert result.exit_code == 0, result.output
    assert "deploys no SageMaker endpoint; nothing to do" in _text(result)
    assert output.read_text() == "refresh=false\n"


def test_an_aws_error_before_any_change_fails_clearly_and_deregisters_nothing(
    stack: Stack,
) -> None:
    stack.go_live({VARIANT: stack.planned_type})
    stack.register()
    stack.set_instance_type("ml.c5.xlarge")
    stack.sagemaker.delete_endpoint_config(EndpointConfigName="live-config")

    result, output = stack.run()

    assert result.exit_code == 2
    assert f"DescribeEndpointConfig live-config (of endpoint {stack.endpoint})" in _text(result)
    assert stack.registered() == {resource_id(stack.endpoint, VARIANT)}
    assert output is None, "no signal: the job stops here"


def test_the_calls_made_are_exactly_the_ones_the_deploy_role_is_proven_to_allow(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/infra/test_infra_iam.py proves the deploy role allows ACTIONS; this proves ACTIONS
    is what the command calls."""
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        called.add(f"{model.service_model.signing_name}:{model.name}")

    session = boto3.session.Session()
    session.events.register("before-call", record)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)  # the one the command's clients use
    stack.go_live({VARIANT: stack.planned_type})
    stack.register()
    stack.set_instance_type("ml.c5.xlarge")
    called.clear()  # the set-up's own calls

    result, _ = stack.run()

    assert result.exit_code == 0, result.output
    assert called == set(ACTIONS)


def test_a_failure_midway_names_what_was_already_deregistered(moto_aws: None) -> None:
    client = boto3.client("application-autoscaling")
    changes = [Deregistration("e", v, "ml.m5.large", "ml.c5.large") for v in ("a", "b")]
    with Stubber(client) as stub:
        for change, error in zip(changes, (None, "AccessDeniedException"), strict=True):
            expected = {
                "ServiceNamespace": NAMESPACE,
                "ResourceId": change.resource_id,
                "ScalableDimension": DIMENSION,
            }
            if error:
                stub.add_client_error("deregister_scalable_target", error, "no", 400, expected)
            else:
                stub.add_response("deregister_scalable_target", {}, expected)
        with pytest.raises(AwsError, match=r"AccessDeniedException.*already deregistered: "
                           r"endpoint/e/variant/a\. .*registers the targets again"):  # fmt: skip
            deregister(client, changes)
        stub.assert_no_pending_responses()
