"""The ASGI app: SageMaker's container contract, served by uvicorn.

- ``GET /ping``: 200 once the model is loaded, 503 before (readiness and liveness probes).
- ``POST /invocations``: JSON or CSV in (see ``serving.schema``), JSON or CSV out by ``Accept``.
- ``GET /metrics``: Prometheus text (names in ``serving.metrics``).
- ``GET /execution-parameters``: what SageMaker batch transform asks before sending work.

The model loads in a thread after the server starts listening, so probes get an answer (503)
instead of a refused connection while it loads. Per request the path is: read the body (bounded),
parse and check it, join a micro-batch, encode, capture; nothing about the model or schema is
rebuilt per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving import metrics as metrics_module
from serving.batching import MicroBatcher
from serving.capture import CaptureWriter
from serving.model import LoadedModel, load, resolve
from serving.responses import JSON_OUT, encode, error_body, output_type
from serving.schema import InputSchema, PayloadTooLarge, RequestError
from serving.settings import ServeSettings

log = logging.getLogger("serving.app")

# Bodies bigger than this are parsed in a thread so one large batch cannot stall small requests.
PARSE_INLINE_BYTES = 64 * 1024


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON_OUT)


def _silence_warnings() -> None:
    """Leave exactly one warnings filter ("ignore") once the model is loaded.

    scikit-learn's ensembles re-install every active warnings filter for each tree they predict
    with (``sklearn.utils.parallel``), so the libraries' dozen filters cost a one-row forest
    prediction about twice its own time; and a warning per request would only flood the logs.
    Warnings raised while loading the model are still logged.
    """
    warnings.resetwarnings()
    warnings.simplefilter("ignore")


class Server:
    """The state one worker process holds: the model, its schema, the batcher and the capture."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = metrics_module.create()
        self.model: LoadedModel | None = None
        self.schema: InputSchema | None = None
        self.batcher: MicroBatcher | None = None
        self.capture: CaptureWriter | None = None
        self.load_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loading: asyncio.Task[None] | None = None
        if self.settings.workers > 1:
            # Workers share one socket and each takes connections once this startup returns:
            # loading first keeps a worker that is still loading from taking requests (and
            # answering 503) after another worker's /ping has already said the model is ready.
            await self._load()
        else:
            # One worker answers /ping "loading" meanwhile, so the wait is visible.
            loading = asyncio.create_task(self._load(), name="load-model")
        try:
            yield
        finally:
            if loading is not None:
                loading.cancel()
            if self.batcher is not None:
                await self.batcher.close()
            if self.capture is not None:
                await asyncio.to_thread(self.capture.close)
            log.info("stopped; captures flushed")

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            model = await asyncio.to_thread(
                lambda: load(resolve(self.settings.model_uri), fast_path=self.settings.fast_path)
            )
        except Exception as exc:
            self.load_error = str(exc)
            log.error("cannot load the model; stopping", extra={"error": str(exc)})
            # Exit so the orchestrator (SageMaker, a Kubernetes Deployment) restarts or reports us.
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if self.settings.silence_warnings:
            _silence_warnings()
        self.schema = InputSchema(model.columns, model.schema)
        self.metrics.describe_features(model.schema)
        self.metrics.model_info.labels(
            model=model.name, version=model.version, task=model.task
        ).set(1)
        task = model.task
        self.batcher = MicroBatcher(
            model.predict_columns,
            max_wait_ms=self.settings.batch_max_wait_ms,
            max_rows=self.settings.batch_max_rows,
            observe=lambda data, predictions: self.metrics.observe_batch(data, predictions, task),
        )
        self.batcher.start()
        if self.settings.capture_destination:
            self.capture = CaptureWriter(
                self.settings.capture_destination,
                endpoint=self.settings.endpoint_name or model.name,
                variant=self.settings.variant_name,
                percent=self.settings.capture_percent,
                flush_bytes=self.settings.capture_flush_bytes,
                flush_seconds=self.settings.capture_flush_seconds,
                on_written=self.metrics.captured.inc,
                on_error=self.metrics.capture_errors.inc,
            )
        self.model = model
        self.metrics.model_loaded.set(1)
        log.info(
            "model loaded",
            extra={
                "model": model.name,
                "version": model.version,
                "task": model.task,
                "source": model.source,
                "seconds": round(time.perf_counter() - started, 3),
                "capture": self.settings.capture_destination,
                "fast_path": model.fast is not None,
            },
        )

    # -- endpoints ------------------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        if self.model is None:
            return _json({"status": "loading", "error": self.load_error}, 503)
        return _json({"status": "ok", "model": self.model.name, "version": self.model.version})

    async def execution_parameters(self, request: Request) -> Response:
        return _json(
            {
                "MaxConcurrentTransforms": self.settings.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, self.settings.max_body_bytes // (1024 * 1024)),
            }
        )

    async def metrics_endpoint(self, request: Request) -> Response:
        if self.batcher is not None:
            await self.batcher.settle()  # a scrape sees every answered request's rows
        return Response(generate_latest(self.metrics.exposition), media_type=CONTENT_TYPE_LATEST)

    async def invocations(self, request: Request) -> Response:
        started = time.perf_counter()
        batcher, schema = self.batcher, self.schema
        if batcher is None or schema is None:
            self.metrics.observe_request(503, time.perf_counter() - started)
            return _json({"error": "the model is not loaded yet"}, 503)
        status = 200
        batcher.arriving += 1
        arrived = True
        try:
            kind = output_type(request.headers.get("accept"))
            body = await self._read_body(request)
            content_type = request.headers.get("content-type", "")
            if len(body) > PARSE_INLINE_BYTES:
                data = await asyncio.to_thread(schema.parse_columns, body, content_type)
            else:
                data = schema.parse_columns(body, content_type)
            batcher.arriving -= 1
            arrived = False
            predictions = await batcher.predict(data)
            out, out_type = encode(predictions, kind)
            if self.capture is not None and self.capture.sampled():
                self.capture.capture(body, content_type, out, out_type)
            return Response(out, media_type=out_type)
        except RequestError as exc:
            status = exc.status
            log.info("rejected request", extra={"status": status, **exc.body()})
            return Response(error_body(exc.body()), status_code=status, media_type=JSON_OUT)
        except Exception:
            status = 500
            log.exception("prediction failed")
            return _json({"error": "internal error; see the server log"}, 500)
        finally:
            if arrived:
                batcher.arriving -= 1
            self.metrics.observe_request(status, time.perf_counter() - started)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def create_app(settings: ServeSettings | None = None) -> Starlette:
    """The app for one worker; uvicorn calls this (``factory=True``) in each worker process."""
    server = Server(settings or ServeSettings())
    routes = [
        Route("/ping", server.ping, methods=["GET"]),
        Route("/invocations", server.invocations, methods=["POST"]),
        Route("/metrics", server.metrics_endpoint, methods=["GET"]),
        Route("/execution-parameters", server.execution_parameters, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan)
    app.state.server = server
    return app
