"""The ASGI app: SageMaker's container contract, served by uvicorn.

- ``GET /ping``: 200 once the model is loaded, 503 before (readiness and liveness probes).
- ``POST /invocations``: JSON or CSV in (see ``serving.schema``), JSON or CSV out by ``Accept``.
- ``GET /metrics``: Prometheus text (names in ``serving.metrics``).
- ``GET /execution-parameters``: what SageMaker batch transform asks before sending work.
- The Open Inference Protocol V2 (``serving.oip``): ``GET /v2/health/live``,
  ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}`` (metadata), ``/v2/models/{name}/ready``
  and ``POST /v2/models/{name}/infer`` (each also under ``/versions/{version}``), as KServe,
  Triton and their clients speak it.

Both protocols predict through one path (``Server._predict``): the same schema checks,
micro-batches, capture records and metrics.

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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving import metrics as metrics_module
from serving import oip
from serving.batching import MicroBatcher
from serving.capture import CaptureWriter
from serving.model import LoadedModel, load, resolve
from serving.responses import JSON_OUT, encode, error_body, output_type
from serving.schema import JSON, Columns, InputSchema, PayloadTooLarge, RequestError
from serving.settings import ServeSettings

log = logging.getLogger("serving.app")

try:
    _VERSION = package_version("mlops-template")
except PackageNotFoundError:  # run from a checkout that was not installed
    _VERSION = "0"

# Bodies bigger than this are parsed in a thread so one large batch cannot stall small requests.
PARSE_INLINE_BYTES = 64 * 1024


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON_OUT)


def _sagemaker_error(status: int, payload: dict[str, Any]) -> Response:
    """The /invocations error body: the message, and the column and row when there is one."""
    return Response(error_body(payload), status_code=status, media_type=JSON_OUT)


def _oip_error(status: int, payload: dict[str, Any]) -> Response:
    """The Open Inference Protocol's error body: ``{"error": message}`` and nothing else."""
    return Response(oip.error(payload["error"]), status_code=status, media_type=JSON_OUT)


@dataclass(frozen=True)
class Decoded:
    """A request decoded by its protocol: the checked columns, and how to answer and capture."""

    columns: Columns
    answer: Callable[[np.ndarray], tuple[bytes, str]]
    captured: Callable[[np.ndarray, bytes, str], tuple[bytes, str, bytes, str]]


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
        self._output_datatype: str | None = None

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
        accept = request.headers.get("accept")
        content_type = request.headers.get("content-type", "")

        def decode(body: bytes, schema: InputSchema, model: LoadedModel) -> Decoded:
            kind = output_type(accept)
            data = schema.parse_columns(body, content_type)

            def answer(predictions: np.ndarray) -> tuple[bytes, str]:
                return encode(predictions, kind)

            def captured(
                predictions: np.ndarray, out: bytes, out_type: str
            ) -> tuple[bytes, str, bytes, str]:
                return body, content_type, out, out_type

            return Decoded(data, answer, captured)

        return await self._predict(request, decode, _sagemaker_error)

    async def _predict(
        self,
        request: Request,
        decode: Callable[[bytes, InputSchema, LoadedModel], Decoded],
        fail: Callable[[int, dict[str, Any]], Response],
    ) -> Response:
        """THE predict path of every protocol: read, decode and check, micro-batch, answer,
        capture, count. ``decode`` is the protocol's; the rest is the same for all of them."""
        started = time.perf_counter()
        batcher, schema, model = self.batcher, self.schema, self.model
        if batcher is None or schema is None or model is None:
            self.metrics.observe_request(503, time.perf_counter() - started)
            return fail(503, {"error": "the model is not loaded yet"})
        status = 200
        batcher.arriving += 1
        arrived = True
        try:
            body = await self._read_body(request)
            if len(body) > PARSE_INLINE_BYTES:
                decoded = await asyncio.to_thread(decode, body, schema, model)
            else:
                decoded = decode(body, schema, model)
            batcher.arriving -= 1
            arrived = False
            predictions = await batcher.predict(decoded.columns)
            out, out_type = decoded.answer(predictions)
            if self.capture is not None and self.capture.sampled():
                self.capture.capture(*decoded.captured(predictions, out, out_type))
            return Response(out, media_type=out_type)
        except RequestError as exc:
            status = exc.status
            log.info("rejected request", extra={"status": status, **exc.body()})
            return fail(status, exc.body())
        except Exception:
            status = 500
            log.exception("prediction failed")
            return fail(500, {"error": "internal error; see the server log"})
        finally:
            if arrived:
                batcher.arriving -= 1
            self.metrics.observe_request(status, time.perf_counter() - started)

    # -- the Open Inference Protocol (serving.oip) ----------------------------------------------

    async def oip_live(self, request: Request) -> Response:
        return _json({"live": True})

    async def oip_ready(self, request: Request) -> Response:
        return _json({"ready": self.model is not None}, 200 if self.model is not None else 503)

    async def oip_server(self, request: Request) -> Response:
        return _json(oip.server_metadata(_VERSION))

    def _oip_model(self, request: Request) -> LoadedModel | Response:
        """The model a /v2/models path names, or the OIP error answer (503 loading, 404)."""
        model = self.model
        if model is None:
            return _oip_error(503, {"error": "the model is not loaded yet"})
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != model.name or (version is not None and version != model.version):
            shown = name if version is None else f"{name} version {version}"
            return _oip_error(
                404, {"error": f"no model {shown!r}; this server serves {model.name!r}"}
            )
        return model

    async def oip_model_metadata(self, request: Request) -> Response:
        model = self._oip_model(request)
        if isinstance(model, Response):
            return model
        datatype = self._oip_datatype(model)
        return _json(
            oip.model_metadata(model.name, model.version, model.columns, model.schema, datatype)
        )

    async def oip_model_ready(self, request: Request) -> Response:
        model = self._oip_model(request)
        if isinstance(model, Response):
            return model
        return _json({"name": model.name, "ready": True})

    async def oip_infer(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        header_length = request.headers.get(oip.HEADER_LENGTH)
        content_encoding = request.headers.get("content-encoding")

        def decode(body: bytes, schema: InputSchema, model: LoadedModel) -> Decoded:
            if name != model.name or (version is not None and version != model.version):
                raise oip.ModelNotFound(f"no model {name!r}; this server serves {model.name!r}")
            call = oip.parse_infer(body, header_length, content_encoding, schema)
            datatype = self._oip_datatype(model)

            def answer(predictions: np.ndarray) -> tuple[bytes, str]:
                return oip.infer_response(
                    model.name, model.version, call, predictions, datatype
                ), JSON_OUT

            def captured(
                predictions: np.ndarray, out: bytes, out_type: str
            ) -> tuple[bytes, str, bytes, str]:
                # Recorded as /invocations records them, so the monitor reads both alike.
                return (call.capture_body(model.columns), JSON, *encode(predictions, JSON))

            return Decoded(call.columns, answer, captured)

        return await self._predict(request, decode, _oip_error)

    def _oip_datatype(self, model: LoadedModel) -> str:
        if self._output_datatype is None:
            self._output_datatype = oip.output_datatype(model.task, model.classes)
        return self._output_datatype

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
        # The Open Inference Protocol V2 (serving.oip), on the same port and the same model.
        Route("/v2/health/live", server.oip_live, methods=["GET"]),
        Route("/v2/health/ready", server.oip_ready, methods=["GET"]),
        Route("/v2", server.oip_server, methods=["GET"]),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, server.oip_model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", server.oip_model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", server.oip_infer, methods=["POST"]),
        ]
    app = Starlette(routes=routes, lifespan=server.lifespan)
    app.state.server = server
    return app
