"""The shared Pulumi mock runtime: one Mocks class that plays the providers, and helpers that
run a program under it and hand back every resource it declared (fixtures in ``conftest.py``).

Following Pulumi's unit-testing guide: ``pulumi.runtime.set_mocks`` replaces the engine, the
Mocks fill in what AWS or Kubernetes would compute (ids, ARNs, generated names, URLs), and a
program run under ``pulumi.runtime.test`` finishes once every registration has completed. Tests
then assert on the recorded inputs, which are exactly what a real ``pulumi up`` would send.
"""

from __future__ import annotations

import copy
import json
import os
import runpy
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from examples_root import copy_examples

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from infra.policy.rules import Resource  # noqa: E402
from pipelines.core.pins import Environment, save_environment  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"
# The Pulumi project, and so the namespace of the stacks' config keys: `mlops init` renames it.
PROJECT = str(yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["name"])
KUBERNETES_VERSION = "1.33.0"  # manifests are validated against this release's schemas
TOKEN = "ghp_test-token-never-real"


@dataclass
class Declared:
    """One resource the program declared, with the state the mock provider returned."""

    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    state: dict[str, Any]


@dataclass
class Run:
    """Everything one program run declared, and its stack outputs."""

    resources: list[Declared]
    outputs: dict[str, Any] = field(default_factory=dict)
    protected: set[str] = field(default_factory=set)  # names declared with protect=True
    retained: set[str] = field(default_factory=set)  # names declared with retain_on_delete=True

    def of(self, type_token: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Declared:
        found = self.of(type_token)
        assert len(found) == 1, f"expected one {type_token}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Declared:
        return next(r for r in self.resources if r.name == name)

    def for_rules(self) -> list[Resource]:
        """Resources as policy rules see them, with references resolved by id and ARN."""
        by_value: dict[str, str] = {}
        for r in self.resources:
            for value in (r.id, r.state.get("arn"), r.state.get("bucket"), r.state.get("name")):
                if isinstance(value, str):
                    by_value.setdefault(value, r.name)
        result = []
        for r in self.resources:
            refs = {
                key: [by_value[value]]
                for key, value in r.inputs.items()
                if isinstance(value, str) and value in by_value and by_value[value] != r.name
            }
            result.append(Resource(r.type, r.name, r.inputs, refs))
        return result

    def kubernetes_manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object as the manifest the provider would send to the API server."""
        return [
            _integral(dict(r.inputs)) for r in self.resources if r.type.startswith("kubernetes:")
        ]


def _integral(value: Any) -> Any:
    """The mock monitor carries numbers as doubles; the API server's schemas want integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


class Mocks(pulumi.runtime.Mocks):
    """Plays AWS and Kubernetes: ids, ARNs and generated names as the providers would set them."""

    def __init__(self) -> None:
        self.resources: list[Declared] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        physical = f"{args.name}-{len(self.resources):07x}"
        state = dict(inputs)
        service = args.typ.split(":")[1].split("/")[0] if args.typ.startswith("aws:") else ""
        kind = args.typ.rsplit(":", 1)[-1]
        if args.typ == "aws:s3/bucket:Bucket":
            state.setdefault("bucket", physical)
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
            resource_id = state["bucket"]
        else:
            state.setdefault("name", physical)
            resource_id = f"{physical}-id"
            if service:
                state.setdefault("arn", _arn(args.typ, service, kind, state, physical))
        if args.typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{state['name']}"
        if args.typ == "aws:sqs/queue:Queue":
            state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{state['name']}"
        if args.typ == "aws:kms/key:Key":
            state["keyId"] = resource_id
        if args.typ == "aws:sagemaker/modelPackageGroup:ModelPackageGroup":
            state["name"] = inputs["modelPackageGroupName"]
        self.resources.append(Declared(args.typ, args.name, inputs, resource_id, state))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "id": ACCOUNT}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": REGION, "region": REGION, "id": REGION}
        if args.token == "aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage":
            repo = args.args.get("repositoryName")
            path = f"156813124566.dkr.ecr.{REGION}.amazonaws.com/{repo}:latest"
            return {"registryPath": path, "id": path}
        if args.token == "aws:ecr/getRepository:getRepository":
            name = args.args["name"]
            return {
                "name": name,
                "arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}",
                "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}",
                "id": name,
            }
        if args.token == "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider":
            host = args.args["url"].removeprefix("https://")
            arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"
            return {"arn": arn, "url": host, "id": arn}
        if args.token == "aws:eks/getCluster:getCluster":
            name = args.args["name"]
            return {
                "name": name,
                "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{name}",
                "endpoint": f"https://EXAMPLE.gr7.{REGION}.eks.amazonaws.com",
                "certificateAuthorities": [{"data": "LS0tLS1CRUdJTi1DRVJU"}],
                "id": name,
            }
        raise AssertionError(f"the program called an unexpected function: {args.token}")


# ARNs in the formats AWS gives them (Service Authorization Reference), so that the IAM tests
# evaluate policies against the ARNs a real deploy touches. ``{n}`` is the resource's name.
_ARN_FORMATS = {
    "aws:iam/role:Role": "arn:aws:iam::{a}:role{path}{n}",
    "aws:iam/policy:Policy": "arn:aws:iam::{a}:policy{path}{n}",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "arn:aws:iam::{a}:oidc-provider/{url}",
    "aws:kms/key:Key": "arn:aws:kms:{r}:{a}:key/{id}",
    "aws:kms/alias:Alias": "arn:aws:kms:{r}:{a}:{n}",
    "aws:ecr/repository:Repository": "arn:aws:ecr:{r}:{a}:repository/{n}",
    "aws:sagemaker/model:Model": "arn:aws:sagemaker:{r}:{a}:model/{lower}",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": (
        "arn:aws:sagemaker:{r}:{a}:endpoint-config/{lower}"
    ),
    "aws:sagemaker/endpoint:Endpoint": "arn:aws:sagemaker:{r}:{a}:endpoint/{lower}",
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": (
        "arn:aws:sagemaker:{r}:{a}:model-package-group/{lower}"
    ),
    "aws:scheduler/schedule:Schedule": "arn:aws:scheduler:{r}:{a}:schedule/default/{n}",
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": (
        "arn:aws:sagemaker:{r}:{a}:mlflow-tracking-server/{n}"
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": "arn:aws:cloudwatch:{r}:{a}:alarm:{n}",
    "aws:cloudwatch/dashboard:Dashboard": "arn:aws:cloudwatch::{a}:dashboard/{n}",
    "aws:cloudwatch/eventRule:EventRule": "arn:aws:events:{r}:{a}:rule/{n}",
    "aws:cloudwatch/eventConnection:EventConnection": "arn:aws:events:{r}:{a}:connection/{n}/{id}",
    "aws:cloudwatch/eventApiDestination:EventApiDestination": (
        "arn:aws:events:{r}:{a}:api-destination/{n}/{id}"
    ),
    "aws:sns/topic:Topic": "arn:aws:sns:{r}:{a}:{n}",
    "aws:sqs/queue:Queue": "arn:aws:sqs:{r}:{a}:{n}",
    "aws:secretsmanager/secret:Secret": "arn:aws:secretsmanager:{r}:{a}:secret:{n}-AbCdEf",
    "aws:budgets/budget:Budget": "arn:aws:budgets::{a}:budget/{n}",
    "aws:appautoscaling/target:Target": (
        "arn:aws:application-autoscaling:{r}:{a}:scalable-target/{id}"
    ),
}


def _arn(type_token: str, service: str, kind: str, state: dict[str, Any], physical: str) -> str:
    # Resources named by a field of their own keep that name; the others get Pulumi's auto-name.
    given = (state.get(key) for key in ("dashboardName", "trackingServerName", "name"))
    name = str(next((value for value in given if value), physical))
    form = _ARN_FORMATS.get(type_token, "arn:aws:{service}:{r}:{a}:{kind}/{n}")
    return form.format(
        a=ACCOUNT,
        r=REGION,
        n=name,
        lower=name.lower(),
        id=physical.rsplit("-", 1)[-1],
        path=state.get("path") or "/",
        url=str(state.get("url", "")).removeprefix("https://"),
        service=service,
        kind=kind.lower(),
    )


def run_program(
    program: Callable[[], Any], *, stack: str = "dev", config: dict[str, Any] | None = None
) -> Run:
    """Run ``program`` under fresh mocks as stack ``stack`` and collect what it declared."""
    mocks = Mocks()
    # A fresh root stack per run, so nothing (transformations, outputs) leaks between runs.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()}
    pulumi.runtime.set_all_config(values, [k for k in values if k.endswith(":githubToken")])
    outputs: dict[str, Any] = {}
    protected: set[str] = set()
    retained: set[str] = set()

    def record_protect(args: pulumi.ResourceTransformationArgs) -> None:
        # Mocks see inputs, not options; a stack transformation sees both.
        if args.opts and args.opts.protect:
            protected.add(args.name)
        if args.opts and args.opts.retain_on_delete:
            retained.add(args.name)

    @pulumi.runtime.test
    def run() -> Any:
        pulumi.runtime.register_stack_transformation(record_protect)
        result = program()
        if isinstance(result, dict):
            return pulumi.Output.from_input(result).apply(outputs.update)
        return None

    run()
    return Run(mocks.resources, outputs, protected, retained)


def run_infra_main(stack: str, root: Path, config: dict[str, Any]) -> Run:
    """``infra/__main__.py`` as stack ``stack`` over the checkout at ``root`` (``MLOPS_ROOT``),
    under fresh mocks: every resource exactly as ``pulumi up`` would send it."""

    def program() -> None:
        previous = os.environ.get("MLOPS_ROOT")
        os.environ["MLOPS_ROOT"] = str(root)
        try:
            runpy.run_path(str(REPO_ROOT / "infra" / "__main__.py"), run_name="__main__")
        finally:
            if previous is None:
                os.environ.pop("MLOPS_ROOT", None)
            else:
                os.environ["MLOPS_ROOT"] = previous

    return run_program(program, stack=stack, config=config)


def stack_config(stack: str) -> dict[str, Any]:
    """Pulumi.yaml's defaults overlaid with Pulumi.<stack>.yaml, as the CLI would merge them."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    merged: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"]
        for key, spec in project["config"].items()
        if "default" in spec
    }
    stack_file = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    merged.update(stack_file["config"])
    return merged


# --- scratch repositories ---------------------------------------------------------------------

PIN_FIELDS = {
    "run_id": "0123456789abcdef",
    "fingerprint": "f" * 16,
    "data_fingerprint": "d" * 16,
    "git_commit": "c" * 40,
    "promoted_at": "2026-11-25T10:00:00+00:00",
    "promoted_by": "tests",
}


def make_repo(
    root: Path,
    *,
    targets: dict[str, str] | None = None,
    pins: dict[str, dict[str, list[str]]] | None = None,
    strategies: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A copy of the example models and data, the pins and the monitoring files, with
    ``targets`` overriding models' deployment targets and ``pins`` giving, per environment,
    each model's version history (oldest first, last one pinned)."""
    copy_examples(root, team_pins=True)
    if (REPO_ROOT / "monitoring").is_dir():
        shutil.copytree(
            REPO_ROOT / "monitoring",
            root / "monitoring",
            ignore=shutil.ignore_patterns("*.py", "__pycache__"),
        )
    for model, target in (targets or {}).items():
        _edit_model(root, model, lambda d, t=target: d["deployment"].__setitem__("target", t))
    for model, strategy in (strategies or {}).items():
        _edit_model(root, model, lambda d, s=strategy: d["deployment"].__setitem__("strategy", s))
    for env, models in (pins or {}).items():
        path = root / "environments" / f"{env}.yaml"
        if not path.is_file():  # an environment this repository does not have: an empty one
            save_environment(root / "environments", Environment(environment=env))
        data = yaml.safe_load(path.read_text())
        for model, versions in models.items():
            records = [
                {"version": v, "model_uri": f"models:/{model}/{v}", **copy.deepcopy(PIN_FIELDS)}
                for v in versions
            ]
            data["models"][model] = {**records[-1], "history": records[:-1]}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _edit_model(root: Path, model: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = root / "models" / model / "model.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def policy_document(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value
