"""THE capture-format contract: SageMaker Data Capture JSON lines, written and read here.

One record per captured request, exactly as a SageMaker endpoint writes them::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "application/json",
                                        "mode": "OUTPUT", "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2024-05-01T12:00:00.123Z"},
     "eventVersion": "0"}

in files laid out as SageMaker lays them out,
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl`` (UTC), under a local
folder or an ``s3://bucket/prefix``. So the monitor reads captures the same way whichever
target wrote them, through ``read_captures`` (or ``read_capture_lines``, which keeps each
line's file and number for error messages, and reads only one endpoint's folder when asked).

Records are buffered and written by a background thread when the buffer passes a size or an
age, and at ``close()``: the request path never waits for a disk or for S3.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

log = logging.getLogger("serving.capture")

EVENT_VERSION = "0"


def encoding_of(content_type: str) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/csv":
        return "CSV"
    if kind == "application/json" or kind.endswith("+json"):
        return "JSON"
    return "BASE64"


def _payload(body: bytes, content_type: str, mode: str) -> dict[str, str]:
    encoding = encoding_of(content_type)
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    else:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding, data = "BASE64", base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def make_record(
    request: bytes,
    request_type: str,
    response: bytes,
    response_type: str,
    when: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One Data Capture record for a request and its response."""
    when = when or datetime.now(UTC)
    return {
        "captureData": {
            "endpointInput": _payload(request, request_type, "INPUT"),
            "endpointOutput": _payload(response, response_type, "OUTPUT"),
        },
        "eventMetadata": {
            "eventId": event_id or str(uuid.uuid4()),
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{when.microsecond // 1000:03d}Z",
        },
        "eventVersion": EVENT_VERSION,
    }


def decode_data(payload: dict[str, str]) -> bytes:
    """The body bytes of an endpointInput or endpointOutput."""
    if payload.get("encoding") == "BASE64":
        return base64.b64decode(payload["data"])
    return payload["data"].encode("utf-8")


def hour_folder(when: datetime) -> str:
    return when.strftime("%Y/%m/%d/%H")


class CaptureWriter:
    """Samples requests and writes them as Data Capture JSON lines, off the request path."""

    def __init__(
        self,
        destination: str,
        endpoint: str,
        variant: str = "AllTraffic",
        percent: float = 100.0,
        flush_bytes: int = 1024 * 1024,
        flush_seconds: float = 5.0,
        on_written: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.destination = destination.rstrip("/")
        self.base = f"{self.destination}/{endpoint}/{variant}"
        self.percent = percent
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_seconds
        self._on_written = on_written or (lambda _: None)
        self._on_error = on_error or (lambda: None)
        self._buffer: list[tuple[str, bytes]] = []
        self._size = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._files: dict[str, str] = {}  # hour folder -> this writer's file in it
        self._random = random.Random()
        self._thread = threading.Thread(target=self._loop, name="capture-writer", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.percent >= 100 or self._random.random() * 100 < self.percent

    def capture(
        self, request: bytes, request_type: str, response: bytes, response_type: str
    ) -> None:
        now = datetime.now(UTC)
        line = orjson.dumps(make_record(request, request_type, response, response_type, now))
        with self._lock:
            self._buffer.append((hour_folder(now), line + b"\n"))
            self._size += len(line) + 1
            full = self._size >= self.flush_bytes
        if full:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer, self._size = self._buffer, [], 0
        if not pending:
            return
        by_hour: dict[str, list[bytes]] = {}
        for hour, line in pending:
            by_hour.setdefault(hour, []).append(line)
        for hour, lines in by_hour.items():
            try:
                self._write(hour, b"".join(lines))
                self._on_written(len(lines))
            except Exception:
                log.exception("capture write failed", extra={"records": len(lines)})
                self._on_error()

    def close(self) -> None:
        """Stop the background thread and write what is buffered."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def _file_name(self) -> str:
        now = datetime.now(UTC)
        return f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"

    def _write(self, hour: str, data: bytes) -> None:
        if self.base.startswith("s3://"):
            # S3 objects cannot be appended to: each flush is an object of its own.
            bucket, _, prefix = self.base.removeprefix("s3://").partition("/")
            key = f"{prefix}/{hour}/{self._file_name()}".lstrip("/")
            _s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/jsonl")
            return
        name = self._files.get(hour)
        if name is None:
            name = self._files[hour] = self._file_name()
        folder = Path(self.base) / hour
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / name, "ab") as handle:
            handle.write(data)


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


# <endpoint>/<variant>/yyyy/mm/dd/hh/<file>: the parts of a file's path below the destination.
LAYOUT_PARTS = 7


class CaptureLine(NamedTuple):
    """One raw line of a capture file, with where it came from (for error messages)."""

    source: str  # a local file path or s3://bucket/key
    number: int  # 1-based line number
    data: bytes


class NoEndpointCaptures(LookupError):
    """The location holds other endpoints' captures but none of the one asked for."""


def _scope(files: list[tuple[str, tuple[str, ...]]], endpoint: str | None) -> list[str]:
    """The files of ``endpoint`` when the location holds per-endpoint folders, else all of them.

    A file ``LAYOUT_PARTS`` or more parts below the location sits in an endpoint folder (the
    location is a destination, or above one): then only ``endpoint``'s files are kept, so that
    another model's captures are never mixed in. Shallower files mean the location already is an
    endpoint folder (or a variant, a day, ...), read whole.
    """
    if endpoint is None or not any(len(parts) >= LAYOUT_PARTS for _, parts in files):
        return [name for name, _ in files]
    kept = [name for name, parts in files if len(parts) >= LAYOUT_PARTS
            and parts[-LAYOUT_PARTS] == endpoint]  # fmt: skip
    if not kept:
        found = sorted({parts[-LAYOUT_PARTS] for _, parts in files if len(parts) >= LAYOUT_PARTS})
        raise NoEndpointCaptures(
            f"no captures of endpoint {endpoint!r} here; it holds the endpoint folder(s) "
            + ", ".join(found)
        )
    return kept


def read_capture_lines(location: str | Path, endpoint: str | None = None) -> Iterator[CaptureLine]:
    """Every non-blank line of the capture files under a local folder or an s3:// prefix.

    Files are read in path order, which is time order in SageMaker's layout. With ``endpoint``,
    a location holding per-endpoint folders is read only in ``<location>/<endpoint>/`` (see
    ``_scope``); a location that is the endpoint folder or below it is read whole.
    """
    client = _s3() if str(location).startswith("s3://") else None
    for name in capture_files(location, endpoint):
        yield from read_file_lines(name, client)


def capture_files(location: str | Path, endpoint: str | None = None) -> list[str]:
    """The capture files under a location, in path (time) order: local paths or s3:// URIs.

    Listing is separate from reading so that a window can be split across workers by file
    (``mlops monitor --shard``), the way SageMaker's ``ShardedByS3Key`` splits objects.
    """
    text = str(location)
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        keys: list[tuple[str, tuple[str, ...]]] = []
        pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for o in page.get("Contents", []):
                key = o["Key"]
                if key.endswith(".jsonl"):
                    below = key[len(prefix) :].strip("/")
                    keys.append((key, tuple(part for part in below.split("/") if part)))
        return [f"s3://{bucket}/{key}" for key in _scope(sorted(keys), endpoint)]
    root = Path(text)
    files = [(str(p), p.relative_to(root).parts) for p in sorted(root.rglob("*.jsonl"))]
    return _scope(files, endpoint)


def file_lines(name: str, client: Any = None) -> Iterator[bytes]:
    """Every line of one capture file, blank ones too, so that counting them from 1 gives the
    line numbers; an S3 object is streamed, never held whole."""
    if name.startswith("s3://"):
        bucket, _, key = name.removeprefix("s3://").partition("/")
        body = (client or _s3()).get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_lines(chunk_size=1 << 20)
        return
    with open(name, "rb") as handle:
        yield from handle


def read_file_lines(name: str, client: Any = None) -> Iterator[CaptureLine]:
    """The non-blank lines of one capture file, numbered."""
    for number, line in enumerate(file_lines(name, client), start=1):
        if line.strip():
            yield CaptureLine(name, number, line)


def read_captures(location: str | Path, endpoint: str | None = None) -> Iterator[dict[str, Any]]:
    """Every capture record under a local folder or an s3:// prefix, file by file in time order.

    ``location`` may be the capture destination itself or any folder below it (an endpoint, a
    variant, a day). A line that is not JSON raises ``ValueError`` naming its file and line.
    """
    for line in read_capture_lines(location, endpoint):
        try:
            yield orjson.loads(line.data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{line.source}:{line.number}: not a JSON line: {exc}") from None
