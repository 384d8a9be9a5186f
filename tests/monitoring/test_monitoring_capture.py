"""The current window is read from Data Capture files, local or on S3, in every body shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from examples_root import EXAMPLE_DATA
from monitoring_helpers import FEATURES, Writer

from monitoring.current import PREDICTION, read_current
from pipelines.core.datasets import load_dataset_by_name
from pipelines.core.errors import DataError

pytestmark = pytest.mark.monitoring

SCHEMA = {f: load_dataset_by_name(EXAMPLE_DATA, "penguins").definition.columns[f] for f in FEATURES}


@pytest.mark.parametrize("shape", ["csv", "split", "records"])
def test_every_body_shape_reads_back_the_rows(
    shape: str, penguins: pd.DataFrame, write_captures: Writer
) -> None:
    """CSV, dataframe_split and dataframe_records captures give the same typed rows."""
    rows = penguins.head(23)
    location = write_captures(rows, shape=shape)
    current = read_current(location, FEATURES, SCHEMA)
    assert current.records == 5 and current.rows == 23
    pd.testing.assert_series_equal(
        current.frame["body_mass_g"], rows["body_mass_g"].astype(float).reset_index(drop=True),
        check_names=False,
    )  # fmt: skip
    assert current.frame["island"].tolist() == rows["island"].tolist()
    assert current.frame[PREDICTION].tolist() == rows["species"].tolist()


def test_captures_on_s3_are_read_with_moto(penguins: pd.DataFrame, write_captures: Writer) -> None:
    """An s3:// prefix is read through the same contract (moto as S3, in-process)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="captures")
        write_captures(penguins.head(12), dest="s3://captures/datacapture")
        current = read_current("s3://captures/datacapture", FEATURES, SCHEMA)
    assert current.rows == 12 and current.records == 3


def test_missing_feature_columns_are_named(penguins: pd.DataFrame, write_captures: Writer) -> None:
    """Captures lacking feature columns are bad input naming every missing column."""
    location = write_captures(penguins.head(10), columns=FEATURES[:3])
    with pytest.raises(
        DataError, match=r"lack the model.s feature column\(s\) body_mass_g, island$"
    ):
        read_current(location, FEATURES, SCHEMA)


def test_no_captures_is_bad_input(tmp_path: Path) -> None:
    """An empty or absent folder is an error naming the location, not an empty report."""
    with pytest.raises(DataError, match="no capture folder"):
        read_current(tmp_path / "absent", FEATURES, SCHEMA)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no capture records"):
        read_current(tmp_path / "empty", FEATURES, SCHEMA)


def test_time_window_filters_records(penguins: pd.DataFrame, write_captures: Writer) -> None:
    """--since keeps only records captured from that time on."""
    location = write_captures(penguins.head(10))
    future = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(DataError, match="since"):
        read_current(location, FEATURES, SCHEMA, since=future)
    past = datetime.now(UTC) - timedelta(hours=1)
    assert read_current(location, FEATURES, SCHEMA, since=past).rows == 10


def test_an_unreadable_bucket_is_bad_input() -> None:
    """S3 refusing the request (no such bucket) is reported as bad input naming the prefix."""
    from moto import mock_aws

    with mock_aws(), pytest.raises(DataError, match="s3://missing/capture: cannot read"):
        read_current("s3://missing/capture", FEATURES, SCHEMA)
