"""``serve``: the entry point the image runs (SageMaker starts containers as ``IMAGE serve``).

Configuration comes from the environment (``serving.settings``); the few flags here override it
for a laptop. A registry URI is downloaded once, here, before the workers start, so N workers
do not download the model N times.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("serving")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__)
    # SageMaker passes the word "serve" as the container's argument; accept and ignore it.
    parser.add_argument("command", nargs="?", choices=["serve"], help=argparse.SUPPRESS)
    parser.add_argument("--model-uri", help="MLflow model folder, or models:/NAME@ALIAS etc.")
    parser.add_argument("--host", help="Address to bind (default 127.0.0.1; the image: 0.0.0.0).")
    parser.add_argument("--port", type=int, help="Port (default 8080).")
    parser.add_argument("--workers", type=int, help="Worker processes (default 1).")
    return parser.parse_args(argv)


def run(
    model_uri: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> int:
    """Resolve the model, then serve until SIGTERM or SIGINT; the exit code for the shell."""
    import uvicorn
    from pydantic import ValidationError

    from serving import logs
    from serving.model import ModelLoadError, load, resolve
    from serving.settings import ServeSettings

    try:
        settings = ServeSettings()
    except ValidationError as exc:
        print(f"error: bad serving setting: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    updates = {"model_uri": model_uri, "host": host, "port": port, "workers": workers}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    try:
        path: Path = resolve(settings.model_uri)
    except ModelLoadError as exc:
        log.error("cannot find the model", extra={"error": str(exc)})
        return 2
    if settings.workers > 1:
        # A worker that cannot load the model exits and uvicorn starts it again, forever: with
        # several workers, try the load once here so that a broken model stops the server.
        try:
            load(path, fast_path=False)
        except ModelLoadError as exc:
            log.error("cannot load the model; stopping", extra={"error": str(exc)})
            return 2
    # Workers are separate processes that read their settings from the environment.
    os.environ["MLOPS_SERVE_MODEL_URI"] = str(path)
    os.environ["MLOPS_SERVE_WORKERS"] = str(settings.workers)
    os.environ.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
    metrics_dir = _multiprocess_metrics_dir() if settings.workers > 1 else None
    log.info(
        "serving",
        extra={"model": str(path), "host": settings.host, "port": settings.port,
               "workers": settings.workers},
    )  # fmt: skip
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=logs.uvicorn_log_config(settings.log_level),
        access_log=settings.access_log,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _multiprocess_metrics_dir() -> Path:
    """A fresh folder where every worker keeps its metric values, summed at each scrape.

    Fresh, because values left by an earlier server would be added to this one's.
    """
    from serving.metrics import MULTIPROC_ENV

    path = Path(tempfile.mkdtemp(prefix="mlops-serving-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sys.exit(run(args.model_uri, args.host, args.port, args.workers))


if __name__ == "__main__":
    main()
