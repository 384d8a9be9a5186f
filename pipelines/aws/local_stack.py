"""The local AWS stack: moto, an MLflow server on a real database, the model server, Prometheus.

Every service is a child process started in a session of its own, so that one signal to its
process group (whose id is the recorded PID) stops it with whatever it forked (MLflow's uvicorn
worker, for one). PIDs, ports and commands are recorded in ``$MLOPS_HOME/stack/state.json`` and
logs go to ``$MLOPS_HOME/stack/logs/``; nothing is ever stopped by name. ``up`` starts only what
is not already answering, so running it twice is harmless.

The model server starts only once a model has been deployed into the stack's ``/opt/ml/model``
stand-in (``$MLOPS_HOME/stack/opt/ml/model``): ``mlops sagemaker deploy`` extracts the version's
``model.tar.gz`` there, exactly as SageMaker would, and restarts it.

moto keeps S3 and SageMaker in memory: after ``down`` the MLflow database (a file) remains but
the artifacts it points at are gone; ``down --purge`` removes the database and the rest too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.aws.sagemaker_flow import AwsSettings, download_model_data
from pipelines.core.errors import MlopsError

SERVICES = ("moto", "mlflow", "model", "prometheus")
HOST = "127.0.0.1"
REGION = "us-east-1"
# moto accepts any credentials; these are the conventional fake ones, never real secrets.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def postgres_bindir() -> Path | None:
    """Debian's PostgreSQL binaries (the newest installed), or None."""
    candidates = [Path("/usr/local/bin/initdb")]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    found = [c for c in candidates if c.is_file()]
    return found[0].resolve().parent if found else None  # /usr/local/bin has links only


class StackError(MlopsError):
    """A stack service cannot be started, or stopped, or its configuration is wrong."""


class LocalStackSettings(BaseSettings):
    """Ports and options of the local stack, from ``MLOPS_STACK_*`` or the command line."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_STACK_", extra="ignore")

    moto_port: int = Field(default=4566, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    model_port: int = Field(default=8080, ge=1, le=65535)
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    db: Literal["sqlite", "postgresql"] = "sqlite"
    bucket: str = Field(default="mlops-artifacts", description="S3 bucket on moto.")
    startup_seconds: float = Field(default=90.0, gt=0)
    stop_seconds: float = Field(default=15.0, gt=0)
    prometheus_bin: str = "/usr/bin/prometheus"


@dataclass
class Service:
    name: str
    pid: int
    port: int
    command: list[str]
    log: str
    started: float = field(default_factory=time.time)


@dataclass
class ServiceStatus:
    name: str
    state: str  # running | stopped | not started | dead
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    detail: str = ""


class Stack:
    """One stack, rooted at a state folder; every method is safe to call in any state."""

    def __init__(self, state_dir: Path, overrides: dict[str, Any] | None = None) -> None:
        """Settings: ``overrides`` (command-line options), else those the running stack was
        started with, else ``MLOPS_STACK_*``, else the defaults."""
        self.dir = state_dir / "stack"
        saved: dict[str, Any] = {}
        if self.settings_file.is_file():
            with contextlib.suppress(ValueError):
                saved = json.loads(self.settings_file.read_text(encoding="utf-8"))
        self.settings = LocalStackSettings(**(saved | (overrides or {})))

    @property
    def settings_file(self) -> Path:
        return self.dir / "settings.json"

    # -- layout ---------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def model_dir(self) -> Path:
        """The stack's stand-in for SageMaker's /opt/ml/model."""
        return self.dir / "opt" / "ml" / "model"

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self._ports().get(name, 0)}"

    def _ports(self) -> dict[str, int]:
        recorded = {name: s.port for name, s in self._read().items()}
        configured = {
            "moto": self.settings.moto_port,
            "mlflow": self.settings.mlflow_port,
            "model": self.settings.model_port,
            "prometheus": self.settings.prometheus_port,
            "postgres": self.settings.postgres_port,
        }
        return configured | recorded  # a running stack keeps the ports it started with

    def client_env(self) -> dict[str, str]:
        """What a client exports to use the stack: boto3 and MLflow honour these variables."""
        ports = self._ports()
        aws = f"http://{HOST}:{ports['moto']}"
        return {
            "AWS_ENDPOINT_URL": aws,
            "MLFLOW_S3_ENDPOINT_URL": aws,
            "AWS_DEFAULT_REGION": REGION,
            **FAKE_CREDENTIALS,
            "MLFLOW_TRACKING_URI": f"http://{HOST}:{ports['mlflow']}",
            "MLOPS_AWS_BUCKET": self.settings.bucket,
        }

    # -- state ----------------------------------------------------------------------------
    def _read(self) -> dict[str, Service]:
        if not self.state_file.is_file():
            return {}
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
            return {name: Service(**entry) for name, entry in raw.get("services", {}).items()}
        except (ValueError, TypeError) as exc:
            raise StackError(f"unreadable stack state ({exc})", file=self.state_file) from exc

    def _write(self, services: dict[str, Service]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {"services": {name: asdict(s) for name, s in services.items()}}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(self.state_file)

    def _record(self, service: Service) -> None:
        services = self._read()
        services[service.name] = service
        self._write(services)

    def _forget(self, name: str) -> None:
        services = self._read()
        if services.pop(name, None) is not None:
            self._write(services)

    # -- status ---------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        recorded = self._read()
        names = [*SERVICES, *(["postgres"] if "postgres" in recorded else [])]
        result = []
        for name in names:
            service = recorded.get(name)
            if service is None:
                detail = "no model deployed yet" if name == "model" else ""
                result.append(ServiceStatus(name, "not started", detail=detail))
                continue
            alive = _alive(service.pid)
            healthy = alive and self._healthy(name, service.port)
            state = "running" if healthy else ("starting or unhealthy" if alive else "dead")
            result.append(
                ServiceStatus(
                    name, state, service.pid, service.port, f"http://{HOST}:{service.port}"
                )
            )
        return result

    def _healthy(self, name: str, port: int) -> bool:
        if name == "postgres":
            return _port_open(port)
        path = {"moto": "/moto-api/", "mlflow": "/health", "model": "/ping"}.get(name, "/-/ready")
        return _http_ok(f"http://{HOST}:{port}{path}")

    def running(self, name: str) -> bool:
        service = self._read().get(name)
        return service is not None and _alive(service.pid) and self._healthy(name, service.port)

    # -- up -------------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None] = lambda _: None) -> list[ServiceStatus]:
        """Start every service that is not already running; return the status of all.

        The services start side by side (MLflow's start-up is the slow one) and are then
        awaited; if one fails, the others started by this call are stopped again.
        """
        self._check_ports_unchanged()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(self.settings.model_dump_json(indent=2), encoding="utf-8")
        started_postgres = self.settings.db == "postgresql" and not self.running("postgres")
        if started_postgres:
            try:
                self._start_postgres(progress)  # MLflow connects to it at start-up
            except BaseException:
                self.stop("postgres")
                raise
        wanted = {"moto": self._moto_command, "mlflow": self._mlflow_command}
        if Path(self.settings.prometheus_bin).is_file():
            wanted["prometheus"] = self._prometheus_command
        pending = [name for name in wanted if not self.running(name)]
        for name in pending:
            # A dead or unhealthy service may have left children holding its port: stop its
            # whole process group before starting it again.
            self.stop(name)
            self._check_port(name, self._port(name))
        # MLflow's job runner (GenAI scorers, seven worker processes) is not used here.
        service_env = {"mlflow": {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}}
        launched = [
            (name, self._launch(name, wanted[name](), 0, progress, service_env.get(name)))
            for name in pending
        ]
        try:
            for name, process in launched:
                self._await(name, process, self._port(name), progress)
            self._ensure_bucket()
        except BaseException:
            for name in [n for n, _ in launched] + (["postgres"] if started_postgres else []):
                self.stop(name)
            raise
        if (self.model_dir / "MLmodel").is_file() and not self.running("model"):
            self.start_model_server(progress=progress)
        return self.status()

    def _check_ports_unchanged(self) -> None:
        """A running service keeps its port: refuse a different one before anything is written,
        so an option given to a running stack does not move the service on its next restart."""
        ports = {
            "moto": self.settings.moto_port,
            "mlflow": self.settings.mlflow_port,
            "model": self.settings.model_port,
            "prometheus": self.settings.prometheus_port,
            "postgres": self.settings.postgres_port,
        }
        for name, service in self._read().items():
            wanted = ports.get(name)
            if wanted is not None and wanted != service.port and _alive(service.pid):
                raise StackError(
                    f"{name} is running on port {service.port}; run `mlops stack down` before "
                    f"starting it on port {wanted}",
                    field=f"--{name}-port",
                )

    def _moto_command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self._port("moto"))]

    def _port(self, name: str) -> int:
        return int(getattr(self.settings, f"{name}_port"))

    def backend_store_uri(self) -> str:
        if self.settings.db == "postgresql":
            return f"postgresql+psycopg://mlops@{HOST}:{self._port('postgres')}/mlflow"
        return f"sqlite:///{self.dir / 'mlflow.db'}"

    def _mlflow_command(self) -> list[str]:
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        return [
            mlflow, "server",
            "--host", HOST,
            "--port", str(self._port("mlflow")),
            "--backend-store-uri", self.backend_store_uri(),
            # Artifacts are proxied by the server into S3 on moto: clients need no S3 access.
            "--artifacts-destination", f"s3://{self.settings.bucket}/mlflow",
            "--workers", "1",
        ]  # fmt: skip

    def _prometheus_command(self) -> list[str]:
        config = self.dir / "prometheus.yml"
        config.write_text(prometheus_config(self._port("model")), encoding="utf-8")
        data = self.dir / "prometheus-data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            self.settings.prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={HOST}:{self._port('prometheus')}",
        ]

    def start_model_server(
        self,
        extra_env: dict[str, str] | None = None,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        """(Re)start the model server on the deployed model; its settings survive restarts."""
        if not (self.model_dir / "MLmodel").is_file():
            raise StackError("no model deployed into the stack yet", file=self.model_dir)
        self.stop("model")
        env_file = self.dir / "model.env.json"
        saved: dict[str, str] = {}
        if env_file.is_file():
            saved = json.loads(env_file.read_text(encoding="utf-8"))
        if extra_env is not None:
            saved = extra_env
            env_file.write_text(json.dumps(saved, indent=2), encoding="utf-8")
        env = {
            "SM_MODEL_DIR": str(self.model_dir),
            "SAGEMAKER_BIND_TO_PORT": str(self._port("model")),
            **saved,
        }
        self._start("model", [sys.executable, "-m", "serving", "serve"], 0, progress, env)

    def _start(
        self,
        name: str,
        command: list[str],
        port: int,
        progress: Callable[[str], None],
        extra_env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        port = port or self._port(name)
        self._check_port(name, port)
        process = self._launch(name, command, port, progress, extra_env, user)
        self._await(name, process, port, progress)

    def _check_port(self, name: str, port: int) -> None:
        if _port_open(port):
            raise StackError(
                f"port {port} is taken by another process; choose another with "
                f"--{name}-port or MLOPS_STACK_{name.upper()}_PORT",
                field=name,
            )

    def _launch(
        self,
        name: str,
        command: list[str],
        port: int,
        progress: Callable[[str], None],
        extra_env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> subprocess.Popen[bytes]:
        port = port or self._port(name)
        log = self.logs / f"{name}.log"
        env = {**_clean_environment(), **self.client_env(), **(extra_env or {})}
        progress(f"starting {name} on {HOST}:{port} (log: {log})")
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.dir,
                start_new_session=True,  # its own process group: stopped as one, by this PID
                user=user,
            )
        self._record(Service(name, process.pid, port, command, str(log)))
        return process

    def _await(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        port: int,
        progress: Callable[[str], None],
    ) -> None:
        """Wait, with a deadline, until the service answers its health check."""
        log = self.logs / f"{name}.log"
        deadline = time.monotonic() + self.settings.startup_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._forget(name)
                raise StackError(
                    f"{name} exited with code {process.returncode} while starting; "
                    f"last lines:\n{_tail(log)}",
                    file=log,
                )
            if self._healthy(name, port):
                progress(f"{name} is up (pid {process.pid})")
                return
            time.sleep(0.2)
        self.stop(name)
        raise StackError(
            f"{name} did not become healthy within {self.settings.startup_seconds:.0f} s; "
            f"last lines:\n{_tail(log)}",
            file=log,
        )

    def _ensure_bucket(self) -> None:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.url("moto"),
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=self.settings.bucket)

    def _start_postgres(self, progress: Callable[[str], None]) -> None:
        """A private PostgreSQL cluster in the stack folder, from Debian's binaries."""
        bindir = postgres_bindir()
        if bindir is None:
            raise StackError(
                "--db postgresql needs PostgreSQL's initdb and postgres (Debian: "
                "apt-get install postgresql); none found",
                field="db",
            )
        data = self.dir / "postgres"
        user = _postgres_user(data)
        if not (data / "PG_VERSION").is_file():
            progress(f"initialising a PostgreSQL cluster in {data}")
            init = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "mlops", "--auth=trust"],
                user=user,
                cwd=data,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if init.returncode != 0:
                raise StackError(f"initdb failed: {init.stderr.strip()[-500:]}", file=data)
        port = self._port("postgres")
        command = [
            str(bindir / "postgres"), "-D", str(data), "-h", HOST, "-p", str(port),
            # TCP only: no socket file in a folder the server's user may not write to.
            "-c", "unix_socket_directories=",
        ]  # fmt: skip
        self._start("postgres", command, port, progress, user=user)
        created = subprocess.run(
            [str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", "mlops", "mlflow"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise StackError(f"cannot create the mlflow database: {created.stderr.strip()}")

    # -- down -----------------------------------------------------------------------------
    def down(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Stop every recorded service, the dependants first."""
        for name in ("prometheus", "model", "mlflow", "postgres", "moto"):
            if name in self._read():
                progress(f"stopping {name}")
                self.stop(name)
        self.settings_file.unlink(missing_ok=True)  # the next `up` reads options and env afresh

    def stop(self, name: str) -> None:
        """SIGTERM the service's process group (id = its recorded PID), SIGKILL after a wait."""
        service = self._read().get(name)
        if service is None:
            return
        # The group outlives its leader (an MLflow killed with -9 leaves its uvicorn workers
        # listening), so it is signalled whether or not the leader is alive; a group whose
        # leader is gone must still run in this stack's folder, so a reused id is left alone.
        leader = _alive(service.pid) and _is_group_leader(service.pid)
        if leader or self._ours(service.pid):
            _signal_group(service.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.settings.stop_seconds
            while time.monotonic() < deadline and _group_alive(service.pid):
                time.sleep(0.1)
            if _group_alive(service.pid):
                _signal_group(service.pid, signal.SIGKILL)
        self._forget(name)

    def _ours(self, pgid: int) -> bool:
        """Whether a live process of group ``pgid`` runs in this stack's folder (services are
        started there, and their children inherit it)."""
        home = self.dir.resolve()
        for pid in _group_members(pgid):
            try:
                cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            except OSError:
                continue
            if cwd == home or home in cwd.parents:
                return True
        return False

    def purge(self) -> None:
        """Remove the stack's folder (database, logs, deployed model) once nothing runs."""
        if any(_alive(s.pid) for s in self._read().values()):
            raise StackError("the stack is running; run `mlops stack down` first")
        shutil.rmtree(self.dir, ignore_errors=True)


def prometheus_config(model_port: int) -> str:
    return (
        "# Generated by `mlops stack up`; scrapes the local model server.\n"
        "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
        "scrape_configs:\n"
        "  - job_name: model\n"
        "    metrics_path: /metrics\n"
        f"    static_configs: [{{targets: ['{HOST}:{model_port}']}}]\n"
    )


def _postgres_user(data: Path) -> str | None:
    """PostgreSQL refuses to run as root: there, run it as Debian's ``postgres`` user."""
    import pwd

    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("PostgreSQL cannot run as root and there is no postgres user") from None
    data.mkdir(parents=True, exist_ok=True)
    os.chown(data, user.pw_uid, user.pw_gid)
    data.chmod(0o700)
    if not os.access(data.parent, os.X_OK) or any(
        not (p.stat().st_mode & 0o001) for p in data.parents if p != Path("/")
    ):
        raise StackError(
            "the postgres user cannot reach this folder (a parent is not world-searchable); "
            "use an MLOPS_HOME outside it",
            file=data,
        )
    return "postgres"


def _clean_environment() -> dict[str, str]:
    # A service must not inherit the caller's tracking server, model or SageMaker settings.
    prefixes = ("MLFLOW_", "MLOPS_SERVE_", "SAGEMAKER_", "SM_", "AWS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reap our own child if it exited
        if finished:
            return False
    except ChildProcessError:
        pass  # not our child (started by another `mlops stack up`): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _group_alive(pgid: int) -> bool:
    _alive(pgid)  # reaps the leader if it is our child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left in the group count as gone.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and not _zombie(int(entry.name)):
                    return True
            except (ProcessLookupError, PermissionError):
                continue
    return False


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and not _zombie(int(entry.name)):
                    members.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def serve_deployment(
    stack: Stack,
    model_data: str,
    endpoint: str,
    variant: str,
    capture_uri: str,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Play the endpoint on the stack: extract the version's model.tar.gz into the stack's
    /opt/ml/model and restart the model server on it, capturing to S3 on moto as SageMaker
    would (same destination, endpoint and variant folders)."""

    staging = stack.dir / "opt" / "ml" / "model.new"
    shutil.rmtree(staging, ignore_errors=True)
    download_model_data(AwsSettings(), model_data, staging)
    stack.stop("model")
    shutil.rmtree(stack.model_dir, ignore_errors=True)
    staging.replace(stack.model_dir)
    stack.start_model_server(
        {
            "MLOPS_SERVE_CAPTURE_DESTINATION": capture_uri,
            "MLOPS_SERVE_ENDPOINT_NAME": endpoint,
            "MLOPS_SERVE_VARIANT_NAME": variant,
            "MLOPS_SERVE_CAPTURE_FLUSH_SECONDS": "1",
        },
        progress,
    )
