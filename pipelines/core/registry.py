"""The one place that talks to MLflow's tracking server and model registry.

The embedded default is SQLite plus an artifact folder under the state directory; any other
``MLFLOW_TRACKING_URI`` is a real server. Either way the same calls are made; only the URI
differs. A server that does not answer is reported as a clear error before anything is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import RegistryError
from pipelines.core.settings import Settings
from pipelines.core.tags import GIT_COMMIT_TAG, MODEL_TAG, STAGE_DONE, TRAIN_STAGE_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured backend and prove it answers."""
    # Fail fast on an unreachable server instead of MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault(
        "MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.registry_timeout_seconds) + 1)
    )
    # Our registry is the trust boundary for model artifacts (see README, "Model format").
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    import mlflow
    from mlflow import MlflowClient

    # After the import, which configures MLflow's own handlers: keep our output readable.
    for noisy in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    uri = settings.resolved_tracking_uri()
    if settings.is_embedded:
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            settings.artifact_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create the state folder {settings.state_dir}: {exc}"
            ) from exc
    elif uri.startswith(("http://", "https://")):
        _probe(uri, settings.registry_timeout_seconds)
    elif uri.startswith(("postgresql", "mysql", "mssql")):
        _probe_database(uri, settings.registry_timeout_seconds)
    # MLflow's setters also export MLFLOW_TRACKING_URI to the environment; restore it so that a
    # later Settings() in this process reads the user's configuration, not our last choice.
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        if exported is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = exported
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:
        # Any failure here is a configuration problem (unsupported scheme, missing database
        # driver, unreachable database), reported as such before anything is written.
        detail = str(getattr(exc, "message", exc)).strip().splitlines()[0][:300]
        raise RegistryError(
            f"cannot use the MLflow backend at {redact(uri)} ({type(exc).__name__}: {detail}); "
            "check MLFLOW_TRACKING_URI. Nothing was changed."
        ) from exc
    return client


def redact(uri: str) -> str:
    """The URI without its password, fit for an error message or a log."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _probe(uri: str, timeout: float) -> None:
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as exc:
        raise RegistryError(
            f"the MLflow tracking server at {redact(uri)} is unreachable ({type(exc).__name__}); "
            "check MLFLOW_TRACKING_URI or start the server. Nothing was changed."
        ) from exc


def _probe_database(uri: str, timeout: float) -> None:
    """One connection attempt with a timeout; MLflow itself retries for minutes."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(
            uri, connect_args={"connect_timeout": max(1, int(timeout))}
        )
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:300].replace(uri, redact(uri))
        raise RegistryError(
            f"the tracking database at {redact(uri)} is unreachable "
            f"({type(exc).__name__}: {detail}); check MLFLOW_TRACKING_URI. Nothing was changed."
        ) from exc


@contextmanager
def registry_errors(uri: str | None = None) -> Iterator[None]:
    """Turn MLflow's and the network's exceptions into one clear error."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        where = f" at {redact(uri)}" if uri else ""
        raise RegistryError(f"MLflow{where} refused the request: {exc.message}") from exc
    except (ConnectionError, OSError) as exc:
        where = f" at {redact(uri)}" if uri else ""
        raise RegistryError(f"cannot reach MLflow{where}: {exc}") from exc


def experiment_id(client: MlflowClient, settings: Settings, model: str) -> str:
    name = f"mlops/{model}"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = (settings.artifact_root / model).as_uri() if settings.is_embedded else None
    return str(client.create_experiment(name, artifact_location=location, tags={MODEL_TAG: model}))


def latest_run(client: MlflowClient, settings: Settings, model: str) -> Run:
    """The most recent training run of ``model``: what the next stage works on by default.

    In GitHub Actions (``GITHUB_SHA`` set), only runs trained from that commit count: several
    pull requests share one registry, and the newest run of the model may be another pull
    request's, which this job must never evaluate, gate or report as its own.
    """
    import os

    experiment = experiment_id(client, settings, model)
    commit = os.environ.get("GITHUB_SHA")
    filter_string = f"tags.`{MODEL_TAG}` = '{model}' and tags.`{TRAIN_STAGE_TAG}` = '{STAGE_DONE}'"
    if commit:
        filter_string += f" and tags.`{GIT_COMMIT_TAG}` = '{commit}'"
    runs = client.search_runs(
        [experiment], filter_string=filter_string, order_by=["attributes.start_time DESC"],
        max_results=1,
    )  # fmt: skip
    if not runs:
        where = (
            f" from commit {commit} (GITHUB_SHA; runs of other commits are not used)"
            if commit
            else ""
        )
        raise RegistryError(
            f"no training run of model {model!r}{where} yet; run `mlops train {model}`"
        )
    return runs[0]


def get_run(client: MlflowClient, model: str, run_id: str | None, settings: Settings) -> Run:
    if run_id is None:
        return latest_run(client, settings, model)
    with registry_errors():
        run = client.get_run(run_id)
    if run.data.tags.get(MODEL_TAG) != model:
        raise RegistryError(f"run {run_id} is not a run of model {model!r}")
    return run


def version_by_alias(client: MlflowClient, model: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise RegistryError(f"MLflow refused the request: {exc.message}") from exc


def aliases_of(client: MlflowClient, model: str) -> dict[str, str]:
    """alias -> version for a registered model, or {} if it is not registered yet."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(model)
    except MlflowException:
        return {}
    return {alias: str(version) for alias, version in registered.aliases.items()}


def load_sklearn_model(uri: str) -> Any:
    import mlflow.sklearn

    with registry_errors():
        return mlflow.sklearn.load_model(uri)
