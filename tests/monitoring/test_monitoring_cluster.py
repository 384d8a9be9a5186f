"""`mlops monitor --shard auto`: the hosts of one run split the window, host 1 merges.

A run is a SageMaker Processing job or a Kubernetes Indexed Job. The hosts are subprocesses,
each with its own fake /opt/ml/config/resourceconfig.json or the environment Kubernetes and the
manifest give an Indexed Job's pod, against one moto server on 127.0.0.1 (S3 for the captures
and the partial states, KMS, CloudWatch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitoring_helpers import FEATURES, Champion, Writer, grown
from typer.testing import CliRunner

from monitoring.cluster import (
    Host,
    check_run_states,
    cluster_host,
    gather_states,
    host_shard,
    indexed_job_host,
    state_name,
)
from pipelines.cli.main import app
from pipelines.core.conventions import JOB_COMPLETION_INDEX, MONITOR_RUN_ID, MONITOR_SHARD_COUNT
from pipelines.core.errors import DataError, MlopsError
from serving.metrics import CLOUDWATCH_NAMESPACE, CW_DRIFT_DETECTED

pytestmark = pytest.mark.monitoring

HOSTS = ["algo-1", "algo-2", "algo-3"]


def _config(folder: Path, described: Any) -> Path:
    path = folder / "resourceconfig.json"
    path.write_text(described if isinstance(described, str) else json.dumps(described))
    return path


def test_the_host_index_is_the_position_of_current_host_in_hosts(tmp_path: Path) -> None:
    described = {"current_host": "algo-2", "hosts": HOSTS, "network_interface_name": "eth0"}
    assert host_shard(_config(tmp_path, described)) == (2, 3)
    assert host_shard(_config(tmp_path, {"current_host": "a", "hosts": ["a"]})) == (1, 1)


def test_without_a_resourceconfig_the_run_is_one_host(tmp_path: Path) -> None:
    assert host_shard(tmp_path / "absent.json") == (1, 1)


@pytest.mark.parametrize(
    ("described", "field", "says"),
    [
        ("{not json", None, "not JSON"),
        ("[]", None, "not a JSON object"),
        ({"current_host": "algo-1"}, "hosts", "not a list of distinct host names"),
        ({"current_host": "algo-1", "hosts": []}, "hosts", "not a list"),
        ({"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]}, "hosts", "distinct"),
        ({"current_host": "algo-1", "hosts": ["algo-1", 2]}, "hosts", "not a list"),
        ({"current_host": "algo-9", "hosts": HOSTS}, "current_host", "'algo-9' is not one of"),
        ({"hosts": HOSTS}, "current_host", "None is not one of"),
    ],
)
def test_a_hostile_resourceconfig_is_bad_input_naming_the_file_and_field(
    tmp_path: Path, described: Any, field: str | None, says: str
) -> None:
    path = _config(tmp_path, described)
    with pytest.raises(DataError, match=says) as error:
        host_shard(path)
    assert error.value.field == field and str(path) in error.value.render()


RUN = "penguins-monitor-29400360"  # a CronJob's Job: <cron job>-<scheduled minute>


def test_an_indexed_jobs_pod_folds_shard_index_plus_1_of_the_count_and_names_its_run() -> None:
    assert indexed_job_host("0", "3", RUN) == Host((1, 3), RUN)
    assert indexed_job_host("2", "3", RUN) == Host((3, 3), RUN)
    assert indexed_job_host("0", "1", None) == Host((1, 1)), "a hand-made Job: no run id"
    assert indexed_job_host(None, None, RUN) is None, "not an Indexed Job: look elsewhere"


def test_the_indexed_jobs_environment_takes_precedence_over_a_resourceconfig(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, {"current_host": "algo-2", "hosts": HOSTS})
    assert cluster_host(config, "0", "2", RUN) == Host((1, 2), RUN)
    assert cluster_host(config) == Host((2, 3)), "SageMaker's path is unchanged"
    assert cluster_host(tmp_path / "absent.json") == Host((1, 1))


@pytest.mark.parametrize(
    ("index", "count", "run", "field", "says"),
    [
        ("1", None, RUN, MONITOR_SHARD_COUNT, "the host count is not set"),
        (None, "3", RUN, JOB_COMPLETION_INDEX, "JOB_COMPLETION_INDEX is not set"),
        ("one", "3", RUN, JOB_COMPLETION_INDEX, "'one' is not a whole number"),
        ("-1", "3", RUN, JOB_COMPLETION_INDEX, "not a whole number"),
        ("0", "3.0", RUN, MONITOR_SHARD_COUNT, "'3.0' is not a whole number"),
        ("0", "0", RUN, MONITOR_SHARD_COUNT, "not a number of hosts >= 1"),
        ("3", "3", RUN, JOB_COMPLETION_INDEX, "not an index from 0 to 2"),
        ("0", "3", "", MONITOR_RUN_ID, "is not a Job's name"),
        ("0", "3", "../other-run", MONITOR_RUN_ID, "is not a Job's name"),
    ],
)
def test_a_bad_indexed_job_environment_is_bad_input_naming_the_variable(
    index: str | None, count: str | None, run: str | None, field: str, says: str
) -> None:
    with pytest.raises(MlopsError, match=says) as error:
        indexed_job_host(index, count, run)
    assert error.value.field == field and error.value.exit_code == 2


def test_the_shard_states_must_be_the_runs_own() -> None:
    check_run_states(f"s3://b/monitoring-reports/prod/penguins/{RUN}/shards", RUN)
    check_run_states("s3://b/anywhere", None)  # SageMaker, or a hand-made Job
    with pytest.raises(MlopsError, match=r"does not name this run \(MLOPS_MONITOR_RUN_ID"):
        check_run_states(f"s3://b/monitoring-reports/{RUN}-old/shards", RUN)
    with pytest.raises(MlopsError, match=r"\$\(MLOPS_MONITOR_RUN_ID\).*not set in the pod"):
        check_run_states("s3://b/monitoring-reports/$(MLOPS_MONITOR_RUN_ID)/shards", None)


def test_host_1_gives_up_naming_the_missing_shards(tmp_path: Path) -> None:
    """Bounded: a fake clock runs past the timeout, nothing really sleeps."""
    (tmp_path / state_name((1, 3))).write_bytes(b"")
    now = [0.0]

    def sleep(seconds: float) -> None:
        assert 0 < seconds <= 5
        now[0] += seconds

    with pytest.raises(DataError, match=r"shard\(s\) 2/3, 3/3") as error:
        gather_states(str(tmp_path), 3, 12, tmp_path / "scratch", clock=lambda: now[0],
                      sleep=sleep)  # fmt: skip
    assert error.value.field == "--shard-timeout" and "12 s" in str(error.value)
    assert now[0] >= 12


@pytest.fixture
def moto_server() -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # Every server of this process shares moto's backends: start empty, leave nothing behind.
    reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    yield url
    urllib.request.urlopen(reset, timeout=10).close()
    server.stop()


def _window(penguins: pd.DataFrame, write_captures: Writer) -> Path:
    """Five capture files of shifted birds (so three hosts get 2, 2 and 1) and one bad line."""
    rows = grown(penguins.sample(250, random_state=5))
    rows.loc[rows.index[::17], "bill_length_mm"] = np.nan
    location = Path("/")
    for k in range(5):
        location = write_captures(rows.iloc[k * 50 : (k + 1) * 50], columns=[*FEATURES, "sex"])
    first = sorted(location.rglob("*.jsonl"))[0]
    with open(first, "ab") as handle:
        handle.write(b"{not json\n")
    return location


def _sagemaker_host(i: int, folder: Path) -> dict[str, str]:
    """Host i of a Processing job: SageMaker's resourceconfig.json, nothing in the environment."""
    described = {"current_host": HOSTS[i - 1], "hosts": HOSTS}
    folder.mkdir(parents=True)
    return {"MLOPS_MONITOR_RESOURCE_CONFIG": str(_config(folder, described))}


def _kubernetes_pod(i: int, folder: Path) -> dict[str, str]:
    """Pod i of an Indexed Job: Kubernetes' index from 0, the manifest's count and Job name."""
    return {
        JOB_COMPLETION_INDEX: str(i - 1), MONITOR_SHARD_COUNT: str(len(HOSTS)),
        MONITOR_RUN_ID: RUN, "MLOPS_MONITOR_RESOURCE_CONFIG": str(folder / "absent.json"),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("place", "run"),
    [(_sagemaker_host, "run-1"), (_kubernetes_pod, RUN)],
    ids=["sagemaker-processing-job", "kubernetes-indexed-job"],
)
def test_three_hosts_merge_into_the_single_process_verdict_and_only_host_1_publishes(
    place: Any,
    run: str,
    champion: Champion,
    penguins: pd.DataFrame,
    write_captures: Writer,
    moto_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    aws = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_server,
    }  # fmt: skip
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    local = _window(penguins, write_captures)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    for path in sorted(local.rglob("*.jsonl")):
        s3.upload_file(str(path), "artifacts", f"captures/{path.relative_to(local)}")
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    baseline = tmp_path / "baseline"
    frozen = CliRunner().invoke(
        app, ["monitor-baseline", "penguins", "--version", champion.version, "--to",
              str(baseline)], env=champion.env,
    )  # fmt: skip
    assert frozen.exit_code == 0, frozen.output
    empty = tmp_path / "app"  # as in the job's image: no models/, no registry
    empty.mkdir()
    base_env = {
        "PATH": os.environ["PATH"], **aws, "MLOPS_ROOT": str(empty),
        "MLOPS_HOME": str(tmp_path / "home"), "MLOPS_MONITOR_ENVIRONMENT": "cluster-test",
        "MLOPS_MONITOR_KMS_KEY": key, "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }  # fmt: skip
    mlops = str(Path(sys.executable).with_name("mlops"))
    states = f"s3://artifacts/monitoring-reports/{run}/shards"
    command = [
        mlops, "monitor", "penguins", "--captures", "s3://artifacts/captures/",
        "--baseline", str(baseline), "--no-fail-on-drift",
    ]  # fmt: skip

    def start(host: int | None, *extra: str) -> subprocess.Popen[str]:
        env = dict(base_env)
        if host is not None:
            env.update(place(host, tmp_path / "configs" / str(host)))
        return subprocess.Popen(
            [*command, *extra], cwd=empty, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    single = start(None, "--output-dir", str(tmp_path / "single"))
    out, _ = single.communicate(timeout=300)
    assert single.returncode == 0 and "drift detected" in out, out
    hosts = {
        h: start(h, "--shard", "auto", "--shard-states", states, "--shard-timeout", "240",
                 "--cloudwatch", "--output-dir", str(tmp_path / f"host-{h}"))
        for h in range(1, len(HOSTS) + 1)
    }  # fmt: skip
    outputs = {h: p.communicate(timeout=300)[0] for h, p in hosts.items()}
    for h, p in hosts.items():
        assert p.returncode == 0, (h, outputs[h])
    for h in (2, 3):
        assert f"shard {h}/3:" in outputs[h] and "host 1 merges" in outputs[h]
        assert "CloudWatch" not in outputs[h], "publishes nothing"
        assert not (tmp_path / f"host-{h}").exists(), "publishes nothing"
    assert "CloudWatch:" in outputs[1] and "drift detected" in outputs[1]

    def report(folder: str) -> dict[str, Any]:
        out = json.loads((tmp_path / folder / "drift.json").read_text())
        for volatile in ("at", "seconds"):
            out.pop(volatile)
        return out

    assert report("host-1") == report("single")
    assert report("single")["current"]["files"] == 5
    listed = s3.list_objects_v2(Bucket="artifacts", Prefix=f"monitoring-reports/{run}/shards/")
    names = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"])
    assert names == [state_name((i, 3)) for i in (1, 2, 3)]
    for o in listed["Contents"]:
        head = s3.head_object(Bucket="artifacts", Key=o["Key"])
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)
    # One run, one point of each metric: the verdict was published once, by host 1.
    cloudwatch = boto3.client("cloudwatch")
    metrics = cloudwatch.list_metrics(Namespace=CLOUDWATCH_NAMESPACE)["Metrics"]
    assert CW_DRIFT_DETECTED in {m["MetricName"] for m in metrics}
    for metric in metrics:
        points = cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": metric, "Period": 60,
                                                          "Stat": "SampleCount"}}],
            StartTime=pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1),
            EndTime=pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5),
        )["MetricDataResults"][0]["Values"]  # fmt: skip
        assert sum(points) == 1, metric


def test_host_1_alone_times_out_naming_the_hosts_that_never_reported(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    location = _window(penguins, write_captures)
    config = _config(tmp_path, {"current_host": "algo-1", "hosts": HOSTS})
    env = {**champion.env, "MLOPS_MONITOR_RESOURCE_CONFIG": str(config)}
    states = tmp_path / "states"
    result = CliRunner().invoke(
        app, ["monitor", "penguins", "--captures", str(location), "--shard", "auto",
              "--shard-states", str(states), "--shard-timeout", "0.5",
              "--output-dir", str(tmp_path / "out")], env=env,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "shard(s) 2/3, 3/3" in result.output and "--shard-timeout" in result.output
    assert (states / state_name((1, 3))).is_file(), "its own state was put"
    assert not (tmp_path / "out" / "drift.json").exists(), "no verdict of a third of the window"


def test_shard_auto_refuses_what_it_cannot_combine(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    location = str(_window(penguins, write_captures))
    config = _config(tmp_path, {"current_host": "algo-2", "hosts": HOSTS})
    env = {**champion.env, "MLOPS_MONITOR_RESOURCE_CONFIG": str(config)}

    def mlops(*args: str) -> Any:
        return CliRunner().invoke(app, ["monitor", "penguins", "--captures", location, *args],
                                  env=env)  # fmt: skip

    no_prefix = mlops("--shard", "auto")
    assert no_prefix.exit_code == 2 and "needs --shard-states" in no_prefix.output
    with_out = mlops("--shard", "auto", "--state-out", str(tmp_path / "s.npz"))
    assert with_out.exit_code == 2 and "not with --state-out" in with_out.output
    stray = mlops("--shard-states", str(tmp_path))
    assert stray.exit_code == 2 and "--shard-states goes with --shard auto" in stray.output


def test_shard_auto_off_sagemaker_is_the_plain_run(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    location = str(_window(penguins, write_captures))
    env = {**champion.env, "MLOPS_MONITOR_RESOURCE_CONFIG": str(tmp_path / "absent.json")}
    plain = CliRunner().invoke(
        app, ["monitor", "penguins", "--captures", location, "--shard", "auto",
              "--output-dir", str(tmp_path / "out")], env=env,
    )  # fmt: skip
    assert plain.exit_code == 3, plain.output
    assert "shard 1/1" not in plain.output and "state:" not in plain.output
    assert (tmp_path / "out" / "drift.json").is_file()


def test_shard_auto_in_an_indexed_job_puts_the_pods_shard_under_the_runs_prefix(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path
) -> None:
    """Pod 1 of 3 (host 2): its own shard, under the run's prefix, whatever resourceconfig says."""
    location = str(_window(penguins, write_captures))
    config = _config(tmp_path, {"current_host": "algo-1", "hosts": HOSTS[:2]})
    env = {
        **champion.env, "MLOPS_MONITOR_RESOURCE_CONFIG": str(config),
        JOB_COMPLETION_INDEX: "1", MONITOR_SHARD_COUNT: "3", MONITOR_RUN_ID: RUN,
    }  # fmt: skip
    states = tmp_path / "monitoring-reports" / RUN / "shards"
    result = CliRunner().invoke(
        app, ["monitor", "penguins", "--captures", location, "--shard", "auto",
              "--shard-states", str(states), "--output-dir", str(tmp_path / "out")], env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "shard 2/3:" in result.output and "host 1 merges" in result.output
    assert sorted(p.name for p in states.iterdir()) == [state_name((2, 3))]
    assert not (tmp_path / "out" / "drift.json").exists()


@pytest.mark.parametrize(
    ("variables", "states", "named"),
    [
        ({JOB_COMPLETION_INDEX: "x"}, RUN, JOB_COMPLETION_INDEX),
        ({JOB_COMPLETION_INDEX: "3"}, RUN, JOB_COMPLETION_INDEX),
        ({MONITOR_SHARD_COUNT: "many"}, RUN, MONITOR_SHARD_COUNT),
        ({MONITOR_RUN_ID: "a b"}, RUN, MONITOR_RUN_ID),
        ({}, "other-run", MONITOR_RUN_ID),
        ({MONITOR_RUN_ID: None}, "$(MLOPS_MONITOR_RUN_ID)", "$(MLOPS_MONITOR_RUN_ID)"),
    ],
)
def test_shard_auto_refuses_a_bad_indexed_job_environment_with_exit_2_naming_it(
    champion: Champion, penguins: pd.DataFrame, write_captures: Writer, tmp_path: Path,
    variables: dict[str, str | None], states: str, named: str,
) -> None:  # fmt: skip
    location = str(_window(penguins, write_captures))
    pod = {JOB_COMPLETION_INDEX: "1", MONITOR_SHARD_COUNT: "3", MONITOR_RUN_ID: RUN, **variables}
    env = {**champion.env, "MLOPS_MONITOR_RESOURCE_CONFIG": str(tmp_path / "absent.json"), **pod}
    result = CliRunner().invoke(
        app, ["monitor", "penguins", "--captures", location, "--shard", "auto",
              "--shard-states", f"{tmp_path}/{states}/shards"], env=env,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert not any(tmp_path.rglob("shard-*-of-*.npz")), "nothing folded or put"
