"""One monitoring run on several hosts: each folds its share of the window, the first merges.

A SageMaker Processing job with ``InstanceCount`` n starts the same container n times and
describes the cluster to each in ``/opt/ml/config/resourceconfig.json``
(``{"current_host": "algo-2", "hosts": ["algo-1", "algo-2", ...]}``). ``mlops monitor --shard
auto`` reads it: host i (its position in ``hosts``, from 1) folds shard i/n of the window's
capture files (``monitoring.window.shard_files``) and puts its partial state under the run's
``--shard-states`` prefix; host 1 then waits, bounded, for all n states, merges them and
publishes the verdict, which is the single-process one (``WindowState.merge``).

Every host lists and reads the capture files straight from S3 rather than through a
``ShardedByS3Key`` ProcessingInput: the window is only the last hours of an ever-growing capture
prefix, and an input over that prefix would copy its whole history to the hosts on every run.

A Kubernetes Indexed Job with ``completions`` n (``infra/components/kubernetes_monitor.py``) is
the same cluster described another way: Kubernetes sets ``JOB_COMPLETION_INDEX`` (0-based) in
each pod, and the manifest sets ``MLOPS_MONITOR_SHARD_COUNT`` (n) and ``MLOPS_MONITOR_RUN_ID``
(the Job's name, through the downward API), which a pod is not otherwise told. Where both are
there the Indexed Job's environment wins (``cluster_host``).

Elsewhere there is neither and the run is one host (1/1): the same command then behaves exactly
as without ``--shard auto``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from monitoring.baseline import copy_in, copy_out, split_s3
from pipelines.core.conventions import JOB_COMPLETION_INDEX, MONITOR_RUN_ID, MONITOR_SHARD_COUNT
from pipelines.core.errors import DataError, MlopsError

# How often the first host looks for the other hosts' states (never past its deadline).
POLL_SECONDS = 5.0

T = TypeVar("T")


def host_shard(config: Path) -> tuple[int, int]:
    """This host's shard (i, n) from a resourceconfig.json; (1, 1) where there is none.

    A file that is there but unreadable, not JSON, without a list of distinct host names, or
    whose ``current_host`` is not one of them is bad input naming the file and the field: a
    guess would fold a shard twice or not at all.
    """
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 1, 1
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the cluster description: {exc}", file=config) from None
    try:
        described: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not JSON: {exc}", file=config) from None
    if not isinstance(described, dict):
        raise DataError("not a JSON object with current_host and hosts", file=config)
    hosts = described.get("hosts")
    if (
        not isinstance(hosts, list)
        or not hosts
        or not all(isinstance(h, str) and h for h in hosts)
        or len(set(hosts)) != len(hosts)
    ):
        raise DataError(f"{hosts!r} is not a list of distinct host names", file=config,
                        field="hosts")  # fmt: skip
    current = described.get("current_host")
    if current not in hosts:
        raise DataError(f"{current!r} is not one of the hosts {hosts}", file=config,
                        field="current_host")  # fmt: skip
    return hosts.index(current) + 1, len(hosts)


@dataclass(frozen=True)
class Host:
    """This host's place in a run: its shard (i, n), and the run's id where the platform says."""

    shard: tuple[int, int]
    run: str | None = None


# A Job's name is a DNS subdomain; anything that could not be one path segment is refused.
_RUN_ID = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
# Kubernetes leaves $(NAME) as written in a command when the container has no variable NAME.
_UNEXPANDED = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _whole(text: str, variable: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise MlopsError(f"{text!r} is not a whole number", field=variable)
    return int(text)


def indexed_job_host(index: str | None, count: str | None, run: str | None) -> Host | None:
    """This pod's place in a Kubernetes Indexed Job, or None where ``JOB_COMPLETION_INDEX``
    (``index``) is not set.

    ``count`` is ``MLOPS_MONITOR_SHARD_COUNT`` and ``run`` ``MLOPS_MONITOR_RUN_ID``. A count
    without an index, an index without a count, either not a whole number, an index not below
    the count, or a run id that is empty or not one path segment, is bad input naming the
    variable: a guess would fold a shard twice or not at all, or mix two runs' states.
    """
    if index is None:
        if count is not None:
            raise MlopsError(
                f"{MONITOR_SHARD_COUNT} is {count!r} but {JOB_COMPLETION_INDEX} is not set: "
                "not a pod of an Indexed Job (completionMode: Indexed)",
                field=JOB_COMPLETION_INDEX,
            )
        return None
    if count is None:
        raise MlopsError(
            f"{JOB_COMPLETION_INDEX} is {index!r} (an Indexed Job's pod) but the host count is "
            "not set: set it to the Job's completions",
            field=MONITOR_SHARD_COUNT,
        )
    i, n = _whole(index, JOB_COMPLETION_INDEX), _whole(count, MONITOR_SHARD_COUNT)
    if n < 1:
        raise MlopsError(f"{count!r} is not a number of hosts >= 1", field=MONITOR_SHARD_COUNT)
    if i >= n:
        raise MlopsError(
            f"{index!r} is not an index from 0 to {n - 1} ({MONITOR_SHARD_COUNT} is {n})",
            field=JOB_COMPLETION_INDEX,
        )
    if run is not None and not _RUN_ID.fullmatch(run):
        raise MlopsError(
            f"{run!r} is not a Job's name (is the batch.kubernetes.io/job-name label there?)",
            field=MONITOR_RUN_ID,
        )
    return Host((i + 1, n), run)


def cluster_host(
    config: Path, index: str | None = None, count: str | None = None, run: str | None = None
) -> Host:
    """This host's place in the run: a Kubernetes Indexed Job's, else SageMaker's, else 1/1.

    The Indexed Job's environment comes first: Kubernetes sets ``JOB_COMPLETION_INDEX`` for this
    very pod, while ``config`` is only looked for at a default path, so where someone put both
    there the environment is the explicit statement. Neither platform sets the other's.
    """
    return indexed_job_host(index, count, run) or Host(host_shard(config))


def check_run_states(states: str, run: str | None) -> None:
    """``--shard-states`` must be the run's own: host 1 merges every state it finds there.

    A ``$(NAME)`` left in it is a reference Kubernetes could not expand (no variable NAME in
    the pod), which every run would share; and where the platform names the run (``run``,
    Kubernetes), the prefix must have it as one of its segments.
    """
    unexpanded = _UNEXPANDED.search(states)
    if unexpanded:
        raise MlopsError(
            f"{states!r} holds {unexpanded.group(0)}, which Kubernetes did not expand: "
            f"{unexpanded.group(1)} is not set in the pod, and every run would share the prefix",
            field="--shard-states",
        )
    if run is not None and run not in states.rstrip("/").split("/"):
        raise MlopsError(
            f"{states!r} does not name this run ({MONITOR_RUN_ID} is {run!r}): another run "
            "could find its states there",
            field="--shard-states",
        )


def state_name(shard: tuple[int, int]) -> str:
    return f"shard-{shard[0]}-of-{shard[1]}.npz"


def _is_s3(location: str) -> bool:
    return location.startswith("s3://")


def publish_state(
    fold: Callable[[Path], T], shard: tuple[int, int], states: str, scratch: Path,
    kms_key: str | None = None,
) -> tuple[T, str]:  # fmt: skip
    """Fold this host's shard into ``states`` (folder or s3:// prefix): what ``fold`` returned
    and where the state went.

    ``fold`` writes the state to the path it is given (``run_shard``). On S3 the state is put
    whole once written (with ``kms_key``, as the reports are); in a folder ``save_state``
    renames it into place, so the first host never reads half a state.
    """
    name = state_name(shard)
    if not _is_s3(states):
        folder = Path(states)
        folder.mkdir(parents=True, exist_ok=True)
        return fold(folder / name), str(folder / name)
    split_s3(states, field="--shard-states")
    scratch.mkdir(parents=True, exist_ok=True)
    folded = fold(scratch / name)
    try:
        copy_out(scratch, [name], states, kms_key)
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):  # S3 refused or unreachable
            raise DataError(f"cannot put the partial state: {exc}", file=states,
                            field="--shard-states") from None  # fmt: skip
        raise
    return folded, f"{states.rstrip('/')}/{name}"


def _present(states: str) -> set[str]:
    if not _is_s3(states):
        folder = Path(states)
        return {p.name for p in folder.glob("shard-*-of-*.npz")} if folder.is_dir() else set()
    import boto3

    bucket, prefix = split_s3(states, field="--shard-states")
    pages = (
        boto3.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=f"{prefix}/")
    )
    return {item["Key"].rsplit("/", 1)[-1] for page in pages for item in page.get("Contents", [])}


def gather_states(
    states: str, hosts: int, timeout: float, scratch: Path, *,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:  # fmt: skip
    """The n hosts' partial states as local files, once all are there (host 1's job).

    Waits at most ``timeout`` seconds; past it the error names the shards still missing, so
    that a host that failed or never started shows in the job's failure reason.
    """
    wanted = [state_name((i, hosts)) for i in range(1, hosts + 1)]
    deadline = clock() + timeout
    while True:
        try:
            present = _present(states)
        except Exception as exc:
            if type(exc).__module__.startswith(("botocore", "boto3")):
                raise DataError(f"cannot list the partial states: {exc}", file=states,
                                field="--shard-states") from None  # fmt: skip
            raise
        missing = [i for i, name in enumerate(wanted, start=1) if name not in present]
        if not missing:
            break
        left = deadline - clock()
        if left <= 0:
            shards = ", ".join(f"{i}/{hosts}" for i in missing)
            raise DataError(
                f"timed out after {timeout:g} s waiting for the partial state(s) of shard(s) "
                f"{shards} (hosts {', '.join(f'#{i}' for i in missing)}): did those hosts fail?",
                file=states,
                field="--shard-timeout",
            )
        sleep(min(POLL_SECONDS, left))
    if not _is_s3(states):
        return [Path(states) / name for name in wanted]
    folder = copy_in(states.rstrip("/"), scratch)
    return [folder / name for name in wanted]
