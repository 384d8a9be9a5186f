"""Capture writing and reading without HTTP: SageMaker's record, layout, sampling and flushing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import orjson
import pytest
from moto import mock_aws

from serving.capture import CaptureWriter, decode_data, make_record, read_captures

pytestmark = pytest.mark.serving


def test_a_record_has_exactly_sagemakers_fields() -> None:
    when = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    record = make_record(b"a,b\n1,2\n", "text/csv", b'{"predictions":[1]}', "application/json",
                         when=when, event_id="e-1")  # fmt: skip
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                              "data": "a,b\n1,2\n", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": '{"predictions":[1]}', "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2024-05-01T12:00:00.123Z"},
        "eventVersion": "0",
    }  # fmt: skip


def test_other_content_types_are_base64_and_decode_back() -> None:
    record = make_record(b"\x00\x01", "application/octet-stream", b"ok", "text/csv")
    payload = record["captureData"]["endpointInput"]
    assert payload["encoding"] == "BASE64"
    assert decode_data(payload) == b"\x00\x01"


def test_local_writer_uses_the_sagemaker_layout_and_flushes_on_close(tmp_path: Path) -> None:
    writer = CaptureWriter(str(tmp_path), endpoint="penguins", variant="AllTraffic",
                           flush_seconds=3600)  # fmt: skip
    for i in range(3):
        writer.capture(f'{{"i": {i}}}'.encode(), "application/json", b"{}", "application/json")
    assert list(read_captures(tmp_path)) == []  # buffered, not yet written
    writer.close()
    records = list(read_captures(tmp_path))
    assert [orjson.loads(decode_data(r["captureData"]["endpointInput"]))["i"] for r in records] \
        == [0, 1, 2]  # fmt: skip
    (path,) = list(tmp_path.rglob("*.jsonl"))
    now = datetime.now(UTC)
    parts = path.relative_to(tmp_path).parts
    assert parts[:2] == ("penguins", "AllTraffic")
    assert parts[2:6] == (f"{now:%Y}", f"{now:%m}", f"{now:%d}", f"{now:%H}") or now.minute == 0


def test_a_full_buffer_is_written_without_waiting_for_the_timer(tmp_path: Path) -> None:
    writer = CaptureWriter(str(tmp_path), endpoint="m", flush_bytes=10, flush_seconds=3600)
    writer.capture(b"{}", "application/json", b"{}", "application/json")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list(read_captures(tmp_path)):
        time.sleep(0.05)
    assert len(list(read_captures(tmp_path))) == 1
    writer.close()


def test_sampling_follows_the_percent() -> None:
    never = CaptureWriter("/nonexistent", endpoint="m", percent=0)
    always = CaptureWriter("/nonexistent", endpoint="m", percent=100)
    half = CaptureWriter("/nonexistent", endpoint="m", percent=50)
    try:
        assert not any(never.sampled() for _ in range(1000))
        assert all(always.sampled() for _ in range(1000))
        assert 350 < sum(half.sampled() for _ in range(1000)) < 650
    finally:
        for writer in (never, always, half):
            writer.close()


def test_s3_captures_are_written_and_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="captures")
        writer = CaptureWriter("s3://captures/datacapture", endpoint="penguins",
                               flush_seconds=3600)  # fmt: skip
        writer.capture(b"a\n1\n", "text/csv", b"x\n", "text/csv")
        writer.close()
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="captures")["Contents"]]
        assert len(keys) == 1
        assert keys[0].startswith("datacapture/penguins/AllTraffic/")
        assert keys[0].endswith(".jsonl")
        (record,) = read_captures("s3://captures/datacapture")
        assert decode_data(record["captureData"]["endpointOutput"]) == b"x\n"
