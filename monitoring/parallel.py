"""The window read by every core of the machine: contiguous blocks of files, states merged in order.

Reading captures is CPU-bound Python (``monitoring.window``), so one process uses one core of a
Processing instance that has several. ``fold_files`` splits the window's files into as many
contiguous blocks as it has workers, folds each block in a forked process
(``concurrent.futures``), writes its partial state with ``save_state`` and merges the states in
block order, which is file order: the exact values come out in the order one process would
have read them, so the verdict is the single-process one, bit for bit, while every column is
exact. Past the exact limit the merged KLL sketches keep their stated rank error.

A window too small to repay the forks (under ``MIN_PARALLEL_BYTES`` of local files, or fewer
than two files) is read in this process; so is any platform without ``fork``.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.window import WindowState, fold_window, load_state, save_state
from pipelines.core.errors import DataError

if TYPE_CHECKING:
    from pipelines.core.datasets import ColumnSpec

# About 0.1 s of reading on one core: below it the forks and the state files cost more.
MIN_PARALLEL_BYTES = 16 << 20
# An S3 window is sized by its object count (listing sizes would cost a request per page).
MIN_PARALLEL_OBJECTS = 4


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_for(files: list[str], requested: int) -> int:
    """How many processes read ``files``: ``requested`` when set (>= 1), else one per core for
    a window large enough to repay the forks, else 1."""
    if "fork" not in multiprocessing.get_all_start_methods() or len(files) < 2:
        return 1
    if requested:
        return max(1, min(requested, len(files)))
    remote = [f for f in files if f.startswith("s3://")]
    if remote:
        large = len(remote) >= MIN_PARALLEL_OBJECTS
    else:
        large = sum(os.path.getsize(f) for f in files if os.path.exists(f)) >= MIN_PARALLEL_BYTES
    return min(available_cores(), len(files)) if large else 1


def blocks(files: list[str], count: int) -> list[list[str]]:
    """``files`` cut into ``count`` contiguous blocks of near-equal length, in order."""
    size, extra = divmod(len(files), count)
    out, start = [], 0
    for k in range(count):
        end = start + size + (1 if k < extra else 0)
        out.append(files[start:end])
        start = end
    return [b for b in out if b]


def _fold_block(
    state: WindowState,
    files: list[str],
    schema: dict[str, ColumnSpec],
    since: datetime | None,
    until: datetime | None,
    labelled_events: set[str] | None,
    out: str,
) -> tuple[str, str | None, str | None] | None:
    """In the worker: fold one block into ``out``; a DataError comes back as its parts (an
    exception with keyword-only arguments does not survive pickling)."""
    try:
        folded = fold_window(
            state, files, schema, since=since, until=until, labelled_events=labelled_events
        )
    except DataError as exc:
        return exc.message, exc.file, exc.field
    save_state(folded, Path(out), reference="")
    return None


def fold_files(
    state: WindowState,
    files: list[str],
    schema: dict[str, ColumnSpec],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    labelled_events: set[str] | None = None,
    workers: int = 0,
) -> WindowState:
    """``fold_window`` over ``files``, on ``workers_for(files, workers)`` processes."""
    count = workers_for(files, workers)
    if count == 1:
        return fold_window(
            state, files, schema, since=since, until=until, labelled_events=labelled_events
        )
    parts = blocks(files, count)
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as scratch:
        outs = [str(Path(scratch) / f"block-{k}.npz") for k in range(len(parts))]
        with ProcessPoolExecutor(len(parts), mp_context=context) as pool:
            futures = [
                pool.submit(_fold_block, state, part, schema, since, until, labelled_events, out)
                for part, out in zip(parts, outs, strict=True)
            ]
            failures: list[Any] = [f.result() for f in futures]
        for failure in failures:
            if failure is not None:
                message, file, field = failure
                raise DataError(message, file=file, field=field)
        merged: WindowState | None = None
        for out in outs:
            partial, _ = load_state(Path(out))
            if merged is None:
                merged = partial
            else:
                merged.merge(partial)
    assert merged is not None
    merged.location, merged.shard = state.location, state.shard
    return merged
