"""``mlops sagemaker train|register|approve|deploy|shift|rollback|verify-endpoints|
deregister-scaling``: deployment target ``sagemaker`` (``pipelines.aws.sagemaker_flow``,
``pipelines.aws.sagemaker_training``, ``pipelines.aws.endpoint_check``,
``pipelines.aws.variant_scaling``), against AWS or, with ``eval "$(mlops stack env)"``, against
the local stack.

Registered by ``pipelines.cli.main``; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipelines.cli.common import (
    ModelArg,
    SetOpt,
    connect_registry,
    current_settings,
    guarded,
    parse_overrides,
    progress,
)
from pipelines.cli.stack import local_stack
from pipelines.core.errors import MlopsError
from pipelines.core.tags import SAGEMAKER_MODEL_DATA_TAG

if TYPE_CHECKING:
    from pipelines.aws.sagemaker_flow import AwsSettings
    from pipelines.core.settings import Settings
group = typer.Typer(
    help="Deployment target sagemaker: train, register, approve, deploy and roll back with boto3.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
ModelVersionOpt = typer.Option(..., "--version", help="MLflow version of the model.")
EnvOpt = typer.Option(..., "--env", help="Environment: the endpoint is <model>-<env>.")


def _environment(env: str) -> str:
    """``--env`` as one of environments/*.yaml, checked before any AWS call: a typo would
    otherwise create ``<model>-<typo>`` resources nobody manages."""
    from pipelines.core.pins import environment_path, list_environments, load_environment

    environments = current_settings().environments_dir
    if not environment_path(environments, env).is_file():
        known = list_environments(environments)
        raise MlopsError(
            f"unknown environment {env!r}; known: {', '.join(known) or 'none'} "
            f"(environments/*.yaml in {environments})",
            field="--env",
        )
    load_environment(environments, env)  # a malformed file is reported here, too
    return env


def _weights(pairs: list[str]) -> dict[str, float]:
    """``VARIANT=WEIGHT`` pairs: finite, non-negative weights of which at least one is positive
    (SageMaker's own rule), checked before AWS is called."""
    import math

    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise MlopsError(f"--weight expects VARIANT=NUMBER, got {pair!r}", field="--weight")
        if not math.isfinite(number) or number < 0:
            raise MlopsError(
                f"--weight {pair!r}: a weight is a non-negative number", field="--weight"
            )
        weights[name.strip()] = number
    if not any(w > 0 for w in weights.values()):
        raise MlopsError("at least one --weight must be positive", field="--weight")
    return weights


def _aws() -> AwsSettings:
    from pydantic import ValidationError

    from pipelines.aws.sagemaker_flow import AwsSettings

    try:
        return AwsSettings()
    except ValidationError as exc:
        raise MlopsError(f"bad MLOPS_AWS_* setting: {exc.errors()[0]['msg']}") from None


@group.command("train")
@guarded
def sm_train(
    model: str = ModelArg,
    set_: list[str] = SetOpt,
    local: bool | None = typer.Option(
        None,
        "--local/--remote",
        help="Run the image's train program here (moto runs nothing); default: on the local stack.",
    ),
    timeout: float = typer.Option(3600, "--timeout", help="Seconds to wait for the job."),
) -> None:
    """Train as a SageMaker training job in the project's image, then gate; print the run id."""
    from pipelines.aws.sagemaker_training import submit
    from pipelines.stages.console import print_gates

    settings, client = connect_registry()
    run_locally = _is_local_endpoint() if local is None else local
    result = submit(
        client,
        settings,
        _aws(),
        model,
        parse_overrides(set_),
        run_locally=run_locally,
        timeout_seconds=timeout,
        progress=progress,
    )
    print_gates(result.gates)
    result.gates.raise_if_failed(model)
    typer.echo(result.run_id)


def _is_local_endpoint() -> bool:
    import os

    return os.environ.get("AWS_ENDPOINT_URL", "").startswith(
        ("http://127.0.0.1", "http://localhost")
    )


@group.command("register")
@guarded
def sm_register(
    model: str = ModelArg,
    env: str | None = typer.Option(
        None,
        "--env",
        help="Environment whose package group (<model>-<env>) receives it (default: the one "
        "main's gated versions go to, staging in the template).",
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Default: the latest run."),
) -> None:
    """Register a gated run: MLflow version, model.tar.gz in S3 and a model package, or none."""
    from pipelines.aws.sagemaker_flow import register_package
    from pipelines.core.environment_chain import receiving_environment

    env = _environment(
        env or receiving_environment(current_settings().environments_dir) or "staging"
    )
    settings, client = connect_registry()
    published = register_package(
        client,
        settings,
        _aws(),
        model,
        env,
        run_id,
        progress=progress,
    )
    typer.echo(
        json.dumps(
            {
                "version": published.version,
                "model_package_arn": published.package_arn,
                "model_data": published.model_data,
            }
        )
    )


@group.command("approve")
@guarded
def sm_approve(
    model: str = ModelArg,
    env: str = EnvOpt,
    version: str = ModelVersionOpt,
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approving."),
    note: str = typer.Option("", "--note", help="Approval description."),
) -> None:
    """Move a version's model package from PendingManualApproval to Approved (or Rejected)."""
    from pipelines.aws.sagemaker_flow import APPROVED, REJECTED, set_approval

    _environment(env)
    _, client = connect_registry()
    status = REJECTED if reject else APPROVED
    before = set_approval(client, _aws(), model, version, env, status, note)
    typer.echo(f"{model} v{version}: {before} -> {status}")


@group.command("deploy")
@guarded
def sm_deploy(
    model: str = ModelArg,
    env: str = EnvOpt,
    version: str | None = typer.Option(
        None, "--version", help="Default: the version pinned in the environment."
    ),
    serve_locally: bool | None = typer.Option(
        None,
        "--serve-locally/--no-serve-locally",
        help="Also run the version on the stack's model server; default: when the stack is up.",
    ),
) -> None:
    """Create the model, a versioned endpoint config with data capture, and the endpoint."""
    from pipelines.aws.sagemaker_flow import VARIANT, capture_uri, deploy
    from pipelines.core.definitions import Canary, load_model

    _environment(env)
    settings, client = connect_registry()
    loaded = load_model(settings.models_dir, settings.data_dir, model)
    version = version or _pinned(settings, model, env)
    spec = loaded.definition.deployment
    canary = spec.strategy.canary_percent if isinstance(spec.strategy, Canary) else None
    aws = _aws()
    deployment = deploy(
        client,
        aws,
        model,
        env,
        version,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        canary_percent=canary,
        progress=progress,
    )
    stack = local_stack()
    if serve_locally is None:
        serve_locally = _is_local_endpoint() and stack.running("moto")
    if serve_locally:
        from pipelines.aws.local_stack import serve_deployment

        model_data = client.get_model_version(model, version).tags[SAGEMAKER_MODEL_DATA_TAG]
        serve_deployment(
            stack,
            model_data,
            deployment.endpoint,
            VARIANT,
            capture_uri(aws.bucket, env),
            progress=progress,
        )
        progress(f"{deployment.endpoint}: served locally at {stack.url('model')}")
    typer.echo(
        json.dumps(
            {
                "endpoint": deployment.endpoint,
                "endpoint_config": deployment.endpoint_config,
                "model": deployment.model_name,
                "version": version,
            }
        )
    )


def _pinned(settings: Settings, model: str, env: str) -> str:
    from pipelines.core.pins import load_environment, pinned

    environment = load_environment(settings.environments_dir, env)
    pin = pinned(environment, model)
    if pin is None:
        raise MlopsError(f"{model} is not pinned in {env}; pass --version", field="--version")
    return pin.version


@group.command("shift")
@guarded
def sm_shift(
    model: str = ModelArg,
    env: str = EnvOpt,
    weight: list[str] = typer.Option(..., "--weight", help="VARIANT=WEIGHT (repeatable)."),
) -> None:
    """Shift traffic between a canary endpoint's variants."""
    from pipelines.aws.sagemaker_flow import shift_traffic

    _environment(env)
    weights = _weights(weight)
    shift_traffic(_aws(), model, env, weights)
    typer.echo(f"{model} in {env}: weights {weights}")


@group.command("rollback")
@guarded
def sm_rollback(model: str = ModelArg, env: str = EnvOpt) -> None:
    """Point the endpoint back at the endpoint config it ran before."""
    from pipelines.aws.sagemaker_flow import rollback

    _environment(env)
    config = rollback(_aws(), model, env)
    typer.echo(f"{model} in {env}: rolled back to {config}")


@group.command("verify-endpoints")
@guarded
def sm_verify_endpoints(
    outputs: Path = typer.Option(
        ..., "--outputs", help="The stack's `pulumi stack output --json`, saved to a file."
    ),
) -> None:
    """Fail unless every SageMaker endpoint runs the configuration the stack outputs claim.

    Run after `pulumi up`: an alarm-triggered rollback leaves `up` green and the previous
    version serving; this names the model, the version claimed and the configuration live.
    """
    from pipelines.aws.endpoint_check import expected_endpoints, verify
    from pipelines.aws.sagemaker_flow import aws_client

    expected = expected_endpoints(outputs)
    problems = verify(aws_client("sagemaker", _aws()), expected)
    if problems:
        raise MlopsError("\n".join(problems), file=outputs)
    for endpoint in expected:
        typer.echo(
            f"{endpoint.model}: version {endpoint.version} is live on {endpoint.endpoint_name}"
        )


@group.command("deregister-scaling")
@guarded
def sm_deregister_scaling(
    env: str = EnvOpt,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be deregistered; change nothing."
    ),
    github_output: Path | None = typer.Option(
        None,
        "--github-output",
        help="Also append refresh=true|false to this file: whether `pulumi up` must refresh.",
    ),
) -> None:
    """Before `pulumi up`: deregister the auto-scaling of variants whose instance type changes.

    UpdateEndpoint refuses to change the instance type of, or remove, a variant registered for
    auto-scaling. This compares each SageMaker endpoint ENV's plan deploys with the one live,
    deregisters those targets (with their scaling policies), and says refresh=true so that the
    `up` that follows sees them gone and registers them again after the update.
    """
    from pipelines.aws.sagemaker_flow import aws_client
    from pipelines.aws.variant_scaling import check, deregister, planned_endpoints

    if dry_run and github_output is not None:
        raise MlopsError(
            "--dry-run changes nothing, so it writes no refresh signal", field="--github-output"
        )
    _environment(env)
    planned = planned_endpoints(current_settings().root, env)
    found = None
    if planned:
        aws = _aws()
        autoscaling = aws_client("application-autoscaling", aws)
        found = check(aws_client("sagemaker", aws), autoscaling, planned)
        for note in found.notes:
            typer.echo(note)
        for change in found.deregistrations:
            typer.echo(f"{'would deregister' if dry_run else 'deregistering'}: {change.reason()}")
        if found.deregistrations and not dry_run:
            for done in deregister(autoscaling, found.deregistrations):
                typer.echo(f"deregistered {done} and its scaling policies")
    else:
        typer.echo(f"{env}: its plan deploys no SageMaker endpoint; nothing to do")
    refresh = bool(found and found.refresh)
    if refresh:
        verb = "would run" if dry_run else "runs"
        typer.echo(
            f"the `pulumi up` of {env} {verb} with --refresh: it registers the targets again "
            "after updating the endpoints"
        )
    if github_output is not None:
        with github_output.open("a", encoding="utf-8") as out:
            out.write(f"refresh={'true' if refresh else 'false'}\n")
