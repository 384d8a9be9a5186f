"""The definition commands: new-model, check, dataset-fingerprint, schema (no MLflow needed)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.common import (
    current_settings,
    err_console,
    guarded,
)
from pipelines.core.errors import MlopsError

commands = typer.Typer()


@commands.command("new-model")
@guarded
def new_model(
    name: str = typer.Argument(..., help="Name of the new model (and its folder)."),
    dataset: str = typer.Option(..., "--dataset", help="A dataset under data/."),
    task: str = typer.Option(..., "--task", help="classification or regression."),
    target: str = typer.Option(..., "--target", help="Column to predict."),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated; default all other non-datetime columns."
    ),
    owner: str = typer.Option("unowned", "--owner"),
    description: str = typer.Option("", "--description"),
    from_csv: Path | None = typer.Option(
        None, "--from-csv", help="Also create data/<dataset>/ from this CSV (inferred, commented)."
    ),
) -> None:
    """Scaffold models/<name>/model.yaml from the template, checked against its dataset."""
    from pipelines.template.scaffold import new_model as scaffold

    settings = current_settings()
    feature_list = [f.strip() for f in features.split(",") if f.strip()] if features else None
    path = scaffold(
        settings.models_dir,
        settings.data_dir,
        name=name,
        dataset=dataset,
        task=task,
        target=target,
        features=feature_list,
        owner=owner,
        description=description,
        from_csv=from_csv,
    )
    typer.echo(str(path))


@commands.command()
@guarded
def check() -> None:
    """Validate every model, dataset and environment file (no data is read, no MLflow needed)."""
    from pipelines.core.cluster_settings import check_stack_cluster_settings
    from pipelines.core.conventions import slug_collisions
    from pipelines.core.definitions import discover_models, load_model
    from pipelines.core.deploy_limits import (
        check_cloud_names,
        check_rollout_time,
        check_traffic_shifting,
    )
    from pipelines.core.errors import DefinitionError
    from pipelines.core.estimators import build_pipeline
    from pipelines.core.pins import list_environments, load_environment

    settings = current_settings()
    names = discover_models(settings.models_dir)
    environments = list_environments(settings.environments_dir)
    for name in names:
        model = load_model(settings.models_dir, settings.data_dir, name)
        build_pipeline(model)  # the estimator path and params
        check_traffic_shifting(model.definition, model.path)
        check_rollout_time(model.definition, model.path)
        for environment in environments:
            check_cloud_names(model.definition, model.path, environment)
    for cloud_name, group in slug_collisions(names).items():
        raise DefinitionError(
            f"models {' and '.join(group)} would share the endpoint, package group and alarms "
            f"named {cloud_name!r}: rename one",
            file=settings.models_dir,
        )
    for environment in environments:
        env = load_environment(settings.environments_dir, environment)
        on_kubernetes = [
            name
            for name in env.models
            if name in names
            and load_model(
                settings.models_dir, settings.data_dir, name
            ).definition.deployment.target
            == "kubernetes"
        ]
        # The same rule the Pulumi program applies at preview, read from the stack's file.
        if on_kubernetes and (settings.root / "Pulumi.yaml").is_file():
            check_stack_cluster_settings(settings.root, environment)
    if (settings.root / "Pulumi.yaml").is_file():
        _check_gitops_renders(settings.root, environments)
    err_console().print(
        f"[green]ok[/]: {len(names)} models, {len(environments)} environments", markup=True
    )


def _check_gitops_renders(root: Path, environments: list[str]) -> None:
    """A GitOps stack's committed manifests must be what the definitions render (the controller
    applies the folder, not the pins); stale ones are exit 2, saying how to render them."""
    from pipelines.core.errors import DefinitionError
    from pipelines.gitops.gitops_stacks import check_gitops_stacks

    checks = check_gitops_stacks(root, environments)
    stale = [c.describe() for c in checks if c.changed]
    if stale:
        raise DefinitionError("; ".join(stale), field="kubernetesApply: gitops")
    for c in checks:
        if c.awaiting_image:
            err_console().print(f"[yellow]note[/]: {c.describe()}", markup=True)


@commands.command("dataset-fingerprint")
@guarded
def dataset_fingerprint(
    dataset: str = typer.Argument(..., help="A dataset under data/."),
    write: bool = typer.Option(False, "--write", help="Update the fingerprint in dataset.yaml."),
) -> None:
    """Print the data's fingerprint; with --write, record it in dataset.yaml."""
    from pipelines.core.datasets import (
        add_fingerprint_line,
        dataset_path,
        load_dataset_by_name,
        update_fingerprint,
    )

    settings = current_settings()
    if write:
        path = dataset_path(settings.data_dir, dataset)
        original = path.read_bytes() if path.is_file() else None
        # A dataset being written for the first time has no fingerprint line yet.
        added = add_fingerprint_line(path)
        try:
            old, new = update_fingerprint(load_dataset_by_name(settings.data_dir, dataset))
        except BaseException:
            if added and original is not None:
                path.write_bytes(original)  # nothing half-written
            raise
        typer.echo(new)
        if added:
            err_console().print(f"recorded in {path}")
        elif old != new:
            err_console().print(f"updated {path}: {old} -> {new}")
        return
    loaded = load_dataset_by_name(settings.data_dir, dataset)
    actual = loaded.content_fingerprint()
    typer.echo(actual)
    if actual != loaded.definition.fingerprint:
        raise MlopsError(
            f"differs from the declared {loaded.definition.fingerprint}",
            file=loaded.path,
            field="fingerprint",
        )


@commands.command()
@guarded
def schema(
    check_only: bool = typer.Option(False, "--check", help="Exit 2 if the files are out of date."),
) -> None:
    """Write the JSON Schemas of model.yaml and dataset.yaml to schemas/ for editors."""
    from pipelines.core.schemas import write_schemas

    stale = write_schemas(current_settings().root / "schemas", check_only=check_only)
    if stale and check_only:
        raise MlopsError(f"out of date: {', '.join(stale)}; run `mlops schema`")
