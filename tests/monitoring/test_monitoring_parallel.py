"""The window read on several processes: the single-process state, bit for bit, in file order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_monitoring_fast_records import KINDS, SCHEMA, _as_plain, _lines

from monitoring.parallel import blocks, fold_files, workers_for
from monitoring.window import WindowState, fold_window, new_state
from pipelines.core.errors import DataError

pytestmark = pytest.mark.monitoring


def _state() -> WindowState:
    edges = {"length": np.array([1.0, 2.0, 5.0])}
    return new_state("x", KINDS, edges, "categorical", np.zeros(0))


def _files(tmp_path: Path, count: int) -> list[str]:
    lines = _lines()
    files = []
    for k in range(count):
        path = tmp_path / f"{k:03d}.jsonl"
        # each file a different slice, so that the order of the values is tested
        path.write_bytes(b"\n".join(lines[k % len(lines) :] + lines[: k % 5]) + b"\n")
        files.append(str(path))
    return files


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_several_processes_give_the_single_process_state(tmp_path: Path, workers: int) -> None:
    files = _files(tmp_path, 7)
    one = fold_window(_state(), files, SCHEMA, labelled_events={"e"})
    many = fold_files(_state(), files, SCHEMA, labelled_events={"e"}, workers=workers)
    assert _as_plain(many) == _as_plain(one)
    assert many.files == one.files == 7 and many.location == "x"


def test_a_worker_error_is_the_users_error(tmp_path: Path) -> None:
    files = _files(tmp_path, 3)
    Path(files[1]).unlink()
    Path(files[1]).mkdir()  # reading it fails with an OSError in the worker
    with pytest.raises(DataError, match="cannot read the captures"):
        fold_files(_state(), files, SCHEMA, workers=2)


def test_blocks_are_contiguous_and_cover_every_file() -> None:
    files = [str(k) for k in range(10)]
    cut = blocks(files, 3)
    assert cut == [files[0:4], files[4:7], files[7:10]]
    assert blocks(files[:2], 5) == [["0"], ["1"]]


def test_small_windows_stay_in_one_process(tmp_path: Path) -> None:
    files = _files(tmp_path, 3)
    assert workers_for(files, 0) == 1  # a few KB: not worth a fork
    assert workers_for(files, 8) == 3  # asked for: at most one a file
    assert workers_for(files[:1], 8) == 1
    assert workers_for([f"s3://b/{k}" for k in range(8)], 0) >= 1
