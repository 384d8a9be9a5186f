"""The streamed window: the same verdicts as the in-memory one, sketches within their bound,
partial states that merge into the single-process verdict, S3 objects streamed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from examples_root import EXAMPLE_DATA
from monitoring_helpers import FEATURES, Champion, Writer, grown
from typer.testing import CliRunner, Result

from monitoring.current import PREDICTION, read_current
from monitoring.drift import Profile, Sketched, compare, profile
from monitoring.window import (
    NumericState,
    WindowState,
    fold_window,
    load_state,
    new_state,
    save_state,
    shard_files,
)
from pipelines.cli.main import app
from pipelines.core.datasets import load_dataset_by_name
from pipelines.core.drift_rules import ALLOWED, Kind
from pipelines.core.errors import DataError
from serving.capture import capture_files

pytestmark = pytest.mark.monitoring

COLUMNS = [*FEATURES, "sex"]
SCHEMA = {f: load_dataset_by_name(EXAMPLE_DATA, "penguins").definition.columns[f] for f in COLUMNS}
KINDS: dict[str, Kind] = {
    f: "numeric" if SCHEMA[f].type.is_numeric else "categorical" for f in COLUMNS
}


def _profiles(reference: pd.DataFrame) -> dict[str, Profile]:
    return {f: profile(f, KINDS[f], reference[f]) for f in COLUMNS}


def _stream(
    location: str | Path,
    profiles: dict[str, Profile],
    exact_limit: int = 1_000_000,
    shard: tuple[int, int] = (1, 1),
) -> WindowState:
    edges = {n: p.psi_edges for n, p in profiles.items() if p.psi_edges is not None}
    state = new_state(str(location), KINDS, edges, "categorical", np.zeros(0), exact_limit)
    files = shard_files(capture_files(location, "penguins"), shard)
    return fold_window(state, files, SCHEMA)


def _window(penguins: pd.DataFrame, write_captures: Writer, shape: str) -> Path:
    """Three capture files of shifted birds with gaps (penguins has NaN) and one bad line."""
    rows = grown(penguins.sample(240, random_state=5))
    rows.loc[rows.index[::17], "bill_length_mm"] = np.nan
    rows.loc[rows.index[::13], "island"] = None
    location = Path("/")
    for k in range(3):
        location = write_captures(rows.iloc[k * 80 : (k + 1) * 80], shape=shape, columns=COLUMNS)
    first = sorted(location.rglob("*.jsonl"))[0]
    with open(first, "ab") as handle:
        handle.write(b"{not json\n")
    return location


@pytest.mark.parametrize("repeat", [1, 4])  # 344 rows: p-value tests; 1376: distances
@pytest.mark.parametrize("shape", ["csv", "records"])
def test_streaming_equals_in_memory_for_every_method(
    shape: str, repeat: int, penguins: pd.DataFrame, write_captures: Writer
) -> None:
    """Every method, numeric and categorical, gives the in-memory verdict and stats exactly."""
    location = _window(penguins, write_captures, shape)
    profiles = _profiles(pd.concat([penguins] * repeat))
    memory = read_current(location, COLUMNS, SCHEMA)
    state = _stream(location, profiles)
    assert (state.records, state.rows, state.skipped) == (memory.records, memory.rows, 1)
    assert state.skipped_examples == memory.skipped_examples
    assert memory.frame["bill_length_mm"].isna().any() and memory.frame["island"].isna().any()
    for name in COLUMNS:
        for method in ["auto", *sorted(ALLOWED[KINDS[name]])]:
            expected = compare(profiles[name], memory.frame[name], method)
            got = compare(profiles[name], state.features[name].current(), method)
            assert got.as_dict() == expected.as_dict(), (name, method)
    predictions = profile("prediction", "categorical", penguins["species"])
    assert (
        compare(predictions, state.prediction.current()).as_dict()
        == compare(predictions, memory.frame[PREDICTION].dropna()).as_dict()
    )


def test_sharded_and_merged_equals_single_process(
    penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """Shards of the files, saved and loaded, merge into exactly the single-process state."""
    location = _window(penguins, write_captures, "csv")
    profiles = _profiles(penguins)
    single = _stream(location, profiles)
    merged: WindowState | None = None
    for i in (1, 2, 3):
        path = tmp_path / f"shard-{i}.npz"
        save_state(_stream(location, profiles, shard=(i, 3)), path, "ref")
        part, reference = load_state(path)
        assert reference == "ref" and part.files == 1
        merged = part if merged is None else (merged.merge(part) or merged)
    assert merged is not None
    assert (merged.records, merged.rows, merged.skipped) == (single.records, single.rows, 1)
    for name in COLUMNS:
        for method in ["auto", *sorted(ALLOWED[KINDS[name]])]:
            expected = compare(profiles[name], single.features[name].current(), method)
            got = compare(profiles[name], merged.features[name].current(), method)
            assert got.as_dict() == expected.as_dict(), (name, method)


def test_a_file_that_is_not_a_state_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "state.npz"
    bad.write_bytes(b"not a state")
    with pytest.raises(DataError, match="not a monitor state file") as caught:
        load_state(bad)
    assert caught.value.file == str(bad)


def _sketched(values: np.ndarray, ref: Profile, limit: int) -> Sketched:
    state = NumericState(ref.psi_edges if ref.psi_edges is not None else np.zeros(0), limit)
    for chunk in np.array_split(values, 13):
        state.add(chunk)
    assert not state.exact
    current = state.current()
    assert isinstance(current, Sketched)
    return current


def test_past_the_exact_limit_ks_and_wasserstein_stay_within_the_stated_bound(
    rng: np.random.Generator,
) -> None:
    """A KLL sketch: KS and Wasserstein within the stated error, PSI and the mean exact."""
    ref = profile("x", "numeric", rng.normal(0, 1, 3000))
    values = rng.normal(0.2, 1.3, 150_000)
    current = _sketched(values, ref, 10_000)
    assert current.rank_error < 0.005
    exact = {m: compare(ref, values, m) for m in ("ks", "wasserstein", "psi")}
    approx = {m: compare(ref, current, m) for m in ("ks", "wasserstein", "psi")}
    ks_gap = abs(approx["ks"].stats["ks_statistic"] - exact["ks"].stats["ks_statistic"])
    assert ks_gap <= approx["ks"].stats["ks_statistic_error_bound"]
    w_gap = abs(approx["wasserstein"].score - exact["wasserstein"].score)
    assert w_gap <= approx["wasserstein"].stats["wasserstein_normed_error_bound"]
    assert approx["psi"].score == pytest.approx(exact["psi"].score, rel=1e-12)
    assert approx["psi"].stats["current_mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert all(r.drifted == exact[m].drifted for m, r in approx.items())
    assert approx["ks"].summary.startswith("kll(k=")
    assert approx["ks"].as_dict()["summary"] == approx["ks"].summary


def test_few_values_past_the_exact_limit_are_still_counted_exactly(
    rng: np.random.Generator,
) -> None:
    """A numeric column with few values: auto's chi-square/z-test on exact counts."""
    ref = profile("x", "numeric", rng.integers(0, 4, 800).astype(float))
    values = rng.integers(0, 4, 50_000).astype(float)
    current = _sketched(values, ref, 1_000)
    exact, approx = compare(ref, values), compare(ref, current)
    assert approx.method == exact.method == "chi2"
    assert approx.score == pytest.approx(exact.score, rel=1e-9)


def test_captures_on_s3_are_streamed_not_read_whole(
    penguins: pd.DataFrame, write_captures: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An s3:// prefix folds like a local folder, read in chunks (never Body.read() whole)."""
    import boto3
    from botocore.response import StreamingBody
    from moto import mock_aws

    whole = StreamingBody.read

    def read(self: StreamingBody, amt: int | None = None) -> bytes:
        assert amt is not None, "an S3 capture object was read whole"
        return whole(self, amt)

    monkeypatch.setattr(StreamingBody, "read", read)
    profiles = _profiles(penguins)
    rows = penguins.head(40)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="captures")
        write_captures(rows, dest="s3://captures/datacapture", columns=COLUMNS)
        remote = _stream("s3://captures/datacapture", profiles)
    local = _stream(write_captures(rows, columns=COLUMNS), profiles)
    assert (remote.records, remote.rows) == (local.records, local.rows) == (8, 40)
    for name in COLUMNS:
        assert (
            compare(profiles[name], remote.features[name].current()).as_dict()
            == compare(profiles[name], local.features[name].current()).as_dict()
        )


def test_monitor_shards_and_merge_give_the_single_process_report(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """`--shard i/n --state-out` twice, then `--merge`: the single-process drift.json."""
    location = _window(penguins, write_captures, "records")
    env = {**champion.env}

    def mlops(*args: str) -> Result:
        result = CliRunner().invoke(app, ["monitor", "penguins", *args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    single = mlops("--captures", str(location), "--output-dir", str(tmp_path / "single"))
    assert single.exit_code == 3, single.output
    states = []
    for i in (1, 2):
        state = tmp_path / f"part-{i}.npz"
        shard = mlops("--captures", str(location), "--shard", f"{i}/2", "--state-out", str(state))
        assert shard.exit_code == 0, shard.output
        assert f"shard {i}/2:" in shard.output and state.is_file()
        states.append(state)
    merged = mlops("--merge", str(states[0]), "--merge", str(states[1]),
                   "--output-dir", str(tmp_path / "merged"))  # fmt: skip
    assert merged.exit_code == 3, merged.output

    def report(folder: str) -> dict[str, Any]:
        out = json.loads((tmp_path / folder / "drift.json").read_text())
        for volatile in ("at", "seconds"):
            out.pop(volatile)
        return out

    assert report("merged") == report("single")
    bad = mlops("--captures", str(location), "--shard", "3/2", "--state-out", str(states[0]))
    assert bad.exit_code == 2 and "--shard" in bad.output
