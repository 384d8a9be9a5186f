"""``mlops serve`` and ``mlops predict``: the serving image's server and batch path, locally."""

from __future__ import annotations

import typer

from pipelines.cli.common import (
    ModelArg,
    connect_registry,
    guarded,
)

commands = typer.Typer()

AliasOpt = typer.Option("champion", "--alias", help="Registry alias of the version to use.")
VersionOverrideOpt = typer.Option(None, "--version", help="Version number; overrides --alias.")
ModelUriOpt = typer.Option(
    None, "--model-uri", help="Any MLflow model URI or local model folder; overrides both."
)


def _model_uri(model: str, alias: str, version: int | None, model_uri: str | None) -> str:
    if model_uri:
        return model_uri
    return f"models:/{model}/{version}" if version is not None else f"models:/{model}@{alias}"


@commands.command()
@guarded
def serve(
    model: str = ModelArg,
    alias: str = AliasOpt,
    version: int | None = VersionOverrideOpt,
    model_uri: str | None = ModelUriOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8080, "--port", help="Port (SageMaker's is 8080)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
) -> None:
    """Serve a model over SageMaker's contract and the Open Inference Protocol, locally.

    The serving image's server: /ping and /invocations (SageMaker), /v2/health/live,
    /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready and /v2/models/NAME/infer (the Open
    Inference Protocol V2 that KServe, Triton and their clients speak), and /metrics; one model,
    the same checks, micro-batching, capture and metrics on both.
    """
    from serving.cli import run

    uri = _model_uri(model, alias, version, model_uri)
    if uri.startswith("models:/"):
        connect_registry()  # an unreachable registry is exit 2 before the server starts
    code = run(uri, host=host, port=port, workers=workers)
    if code:
        raise typer.Exit(code)


@commands.command()
@guarded
def predict(
    model: str = ModelArg,
    input_: str = typer.Option(..., "--input", help="Rows to score: a .csv or .json file."),
    output: str = typer.Option(..., "--output", help="Where to write predictions (.csv/.json)."),
    alias: str = AliasOpt,
    version: int | None = VersionOverrideOpt,
    model_uri: str | None = ModelUriOpt,
) -> None:
    """Batch inference from a file, through the same checks and predict path as the server."""
    from pathlib import Path

    from serving.batch import predict_file

    uri = _model_uri(model, alias, version, model_uri)
    if uri.startswith("models:/"):
        connect_registry()
    rows = predict_file(uri, Path(input_), Path(output))
    typer.echo(f"{model}: {rows} rows predicted -> {output}")
