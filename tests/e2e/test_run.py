"""The CLI end to end on a real MLflow registry (SQLite in a temporary folder).

Training is the slow part, so the happy path (`mlops run <model> --promote staging` for every
example model) runs once per module in ``released``; the tests that read it never change it.
Every test that moves a pin or an alias builds its own workspace.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples_root import EXAMPLE_MODELS

from pipelines.core.definitions import discover_models

pytestmark = pytest.mark.e2e

EXAMPLES = discover_models(EXAMPLE_MODELS)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASK_PLOT = {"classification": "confusion_matrix.png", "regression": "residuals.png"}


def run_id_of(result: Any) -> str:
    run_id = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", run_id), result.output
    return run_id


@dataclass
class Released:
    ws: Any
    results: dict[str, Any]
    modes_before: dict[str, int]


def file_modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def released(make_workspace: Any) -> Released:
    """Every example model run once with ``--promote staging``; read-only for the tests."""
    ws = make_workspace("released")
    environments = ws.root / "environments"
    for path in environments.iterdir():
        path.chmod(0o644)  # as a fresh clone has them
    modes_before = file_modes(environments)
    results = {name: ws.mlops("run", name, "--promote", "staging") for name in EXAMPLES}
    return Released(ws, results, modes_before)


def test_both_documented_example_models_are_discovered() -> None:
    assert set(EXAMPLES) >= {"penguins", "seattle_weather"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_run_with_promote_exits_0_and_registers_v1_as_challenger_in_staging(
    released: Released, name: str
) -> None:
    ws, results = released.ws, released.results
    result = results[name]
    assert result.exit_code == 0, result.output
    versions, aliases = ws.registry_state()[name]
    assert versions == [1]
    assert aliases == {"challenger": "1", "staging": "1"}
    assert "champion" not in aliases  # staging is not the champion environment


@pytest.mark.parametrize("name", EXAMPLES)
def test_registered_version_carries_lineage_metric_and_gate_tags(
    released: Released, name: str
) -> None:
    import pipelines
    from pipelines.core.definitions import load_model
    from pipelines.core.fingerprints import model_fingerprints
    from pipelines.core.metric_catalog import metrics_for

    ws = released.ws
    tags = ws.client().get_model_version(name, "1").tags
    model = load_model(ws.root / "models", ws.root / "data", name)
    expected = model_fingerprints(model)

    assert tags["mlops.git_commit"] == ws.env["GITHUB_SHA"]
    assert tags["mlops.fingerprint.data"] == model.dataset.definition.fingerprint
    assert tags["mlops.fingerprint.definition"] == expected.definition
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", tags["mlops.fingerprint.code"])
    assert tags["mlops.pipeline_version"] == pipelines.__version__
    assert tags["mlops.gates.passed"] == "true"

    metric_tags = {
        k.removeprefix("mlops.metric."): float(v)
        for k, v in tags.items()
        if k.startswith("mlops.metric.")
    }
    assert set(metric_tags) <= set(metrics_for(model.definition.task.value))
    assert {model.definition.metric, *model.definition.gates.thresholds} <= set(metric_tags)
    run = ws.client().get_run(ws.client().get_model_version(name, "1").run_id)
    for metric, value in metric_tags.items():
        assert value == pytest.approx(run.data.metrics[f"test_{metric}"], rel=1e-5), metric
    # The passing verdict agrees with the recorded metrics and the declared thresholds.
    for metric, bound in model.definition.gates.thresholds.items():
        value = metric_tags[metric]
        assert bound.min is None or value >= bound.min, (metric, value)
        assert bound.max is None or value <= bound.max, (metric, value)


@pytest.mark.parametrize("name", EXAMPLES)
def test_registered_version_has_a_signature_of_the_features_and_an_input_example(
    released: Released, name: str
) -> None:
    import mlflow.pyfunc
    from mlflow.models import get_model_info

    from pipelines.core.definitions import load_model

    ws = released.ws
    ws.client()
    features = load_model(ws.root / "models", ws.root / "data", name).definition.features
    info = get_model_info(f"models:/{name}/1")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == features
    assert info.saved_input_example_info is not None
    example = mlflow.pyfunc.load_model(f"models:/{name}/1").input_example
    assert list(example.columns) == features
    assert len(example) > 0


@pytest.mark.parametrize("name", EXAMPLES)
def test_staging_pins_file_records_the_registered_version_and_nothing_else_moves(
    released: Released, name: str
) -> None:
    ws = released.ws
    version = ws.client().get_model_version(name, "1")
    pin = ws.pinned("staging", name)
    assert pin is not None
    assert pin.version == "1"
    assert pin.run_id == version.run_id
    assert pin.model_uri == f"models:/{name}/1"
    assert pin.git_commit == ws.env["GITHUB_SHA"]
    assert pin.history == []
    assert ws.pinned("prod", name) is None
    assert ws.pinned("dev", name) is None
    # The file on disk is what `pulumi up` reads: plain YAML with the version in it.
    raw = yaml.safe_load((ws.root / "environments" / "staging.yaml").read_text())
    assert raw["models"][name]["version"] == "1"


def test_promotion_keeps_the_permissions_of_the_pins_files(released: Released) -> None:
    # Other users and tools (CI, `pulumi up` in a container) read these files.
    assert file_modes(released.ws.root / "environments") == released.modes_before


@pytest.mark.parametrize("name", EXAMPLES)
def test_model_card_shows_every_gate_verdict_and_its_plots_exist(
    released: Released, name: str
) -> None:
    ws = released.ws
    out = ws.report_dir(name)
    card = (out / "model_card.md").read_text(encoding="utf-8")
    gates = json.loads((out / "gates.json").read_text(encoding="utf-8"))
    assert gates["passed"] is True
    assert "## Gates" in card
    assert "| gate | verdict | measured | threshold | detail |" in card
    assert {r["gate"] for r in gates["results"]} >= {"champion", "latency", "size"}
    for result in gates["results"]:
        verdict = "skipped" if result["skipped"] else "pass"
        assert f"| {result['gate']} | {verdict} |" in card, result["gate"]

    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", card)
    assert linked, "the card links no plots"
    for plot in linked:
        assert (out / plot).read_bytes().startswith(PNG_MAGIC), plot
    task = yaml.safe_load(ws.model_yaml(name).read_text(encoding="utf-8"))["task"]
    assert TASK_PLOT[task] in linked


@pytest.mark.parametrize("name", EXAMPLES)
def test_model_card_and_plots_are_artifacts_of_the_registered_run(
    released: Released, name: str
) -> None:
    ws = released.ws
    client = ws.client()
    run_id = client.get_model_version(name, "1").run_id
    logged = {Path(a.path).name for a in client.list_artifacts(run_id, "card")}
    assert "model_card.md" in logged
    assert {p.name for p in ws.report_dir(name).glob("*.png")} <= logged


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_model_loads_back_from_the_registry_and_predicts(
    released: Released, name: str
) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np

    from pipelines.core.definitions import load_model
    from pipelines.stages.validate import validate_for_model

    ws = released.ws
    ws.client()
    model = load_model(ws.root / "models", ws.root / "data", name)
    frame, _ = validate_for_model(model)
    rows = frame[model.definition.features].sample(8, random_state=0)

    sk = mlflow.sklearn.load_model(f"models:/{name}@staging")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    from_sklearn = np.asarray(sk.predict(rows))
    from_pyfunc = np.asarray(pyfunc.predict(rows))
    assert len(from_sklearn) == len(rows)
    np.testing.assert_array_equal(from_sklearn, from_pyfunc)

    target = model.dataset.definition.columns[model.definition.target]
    if model.definition.task.value == "classification":
        assert set(from_sklearn) <= set(target.categories or frame[model.definition.target])
    else:
        assert np.isfinite(from_sklearn.astype(float)).all()
        low = target.min if target.min is not None else -np.inf
        high = target.max if target.max is not None else np.inf
        assert ((from_sklearn >= low) & (from_sklearn <= high)).all()


def test_status_json_reports_challenger_and_pins_of_each_model(
    released: Released,
) -> None:
    ws = released.ws
    result = ws.mlops("status", "--json")
    assert result.exit_code == 0, result.output
    statuses = {s["model"]: s for s in json.loads(result.stdout)}
    assert set(statuses) == set(EXAMPLES)
    client = ws.client()
    for name, status in statuses.items():
        assert status["champion"] is None
        assert status["challenger"] == "1"
        assert status["pins"] == {"dev": None, "staging": "1", "prod": None}
        [version] = status["versions"]
        assert version["version"] == "1"
        assert version["aliases"] == ["challenger", "staging"]
        assert version["environments"] == ["staging"]
        assert version["run_id"] == client.get_model_version(name, "1").run_id
        assert version["git_commit"] == ws.env["GITHUB_SHA"]


def test_stages_one_by_one_promote_to_prod_then_rollback_restores_the_previous_version(
    workspace: Any,
) -> None:
    ws = workspace
    client = ws.client()

    # First candidate, stage by stage, each on the latest run.
    first = run_id_of(ws.mlops("train", "penguins"))
    evaluated = ws.mlops("evaluate", "penguins")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["run_id"] == first
    gated = ws.mlops("gate", "penguins")
    assert gated.exit_code == 0, gated.output
    registered = ws.mlops("register", "penguins")
    assert registered.exit_code == 0, registered.output
    assert registered.stdout.strip() == "1"
    assert client.get_model_version("penguins", "1").run_id == first
    assert ws.registry_state()["penguins"] == ([1], {"challenger": "1"})

    for environment in ("staging", "prod"):
        moved = ws.mlops("promote", "penguins", "--to", environment)
        assert moved.exit_code == 0, moved.output
        assert ws.pinned(environment, "penguins").version == "1"
    # Both are idempotent: registering the same run or re-promoting changes nothing.
    before = ws.snapshot()
    again = ws.mlops("register", "penguins", "--run-id", first)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "1"
    again = ws.mlops("promote", "penguins", "--to", "prod")
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stdout
    assert ws.snapshot() == before
    # prod is the champion environment: the champion replaces the challenger alias.
    assert ws.registry_state()["penguins"] == (
        [1],
        {"champion": "1", "prod": "1", "staging": "1"},
    )

    # A second candidate with different hyperparameters, addressed by its run id.
    second = run_id_of(ws.mlops("train", "penguins", "--set", "estimator.params.n_estimators=50"))
    assert second != first
    for stage in ("evaluate", "gate"):
        result = ws.mlops(stage, "penguins", "--run-id", second)
        assert result.exit_code == 0, result.output
    registered = ws.mlops("register", "penguins", "--run-id", second)
    assert registered.exit_code == 0, registered.output
    assert registered.stdout.strip() == "2"
    assert json.loads(client.get_model_version("penguins", "2").tags["mlops.overrides"]) == {
        "estimator.params.n_estimators": 50
    }
    for environment in ("staging", "prod"):
        result = ws.mlops("promote", "penguins", "--to", environment)
        assert result.exit_code == 0, result.output
        assert "v1 -> v2" in result.stdout
    prod = ws.pinned("prod", "penguins")
    assert prod.version == "2"
    assert [h.version for h in prod.history] == ["1"]
    assert ws.registry_state()["penguins"] == (
        [1, 2],
        {"champion": "2", "prod": "2", "staging": "2"},
    )

    rolled = ws.mlops("rollback", "penguins", "--env", "prod")
    assert rolled.exit_code == 0, rolled.output
    assert "v2 -> v1" in rolled.stdout
    prod = ws.pinned("prod", "penguins")
    assert prod.version == "1"
    assert prod.run_id == first
    assert prod.history == []
    assert ws.pinned("staging", "penguins").version == "2"  # rollback touches only prod
    assert ws.registry_state()["penguins"] == (
        [1, 2],
        {"champion": "1", "prod": "1", "staging": "2"},
    )

    status = ws.mlops("status", "penguins", "--json")
    assert status.exit_code == 0, status.output
    [penguins] = json.loads(status.stdout)
    assert (penguins["champion"], penguins["challenger"]) == ("1", None)
    assert penguins["pins"] == {"dev": None, "staging": "2", "prod": "1"}

    before = ws.snapshot()
    again = ws.mlops("rollback", "penguins", "--env", "prod")
    assert again.exit_code == 2, again.output
    assert "no earlier version" in again.stderr
    assert ws.snapshot() == before


def test_promote_to_prod_of_a_version_not_pinned_in_staging_exits_2_and_changes_nothing(
    workspace: Any,
) -> None:
    ws = workspace
    result = ws.mlops("run", "penguins")
    assert result.exit_code == 0, result.output
    before = ws.snapshot()
    assert before["registry"]["penguins"] == ([1], {"challenger": "1"})

    for extra in ([], ["--version", "1"]):
        refused = ws.mlops("promote", "penguins", "--to", "prod", *extra)
        assert refused.exit_code == 2, refused.output
        assert "staging" in refused.stderr
        assert ws.snapshot() == before


def test_worse_candidate_is_rejected_with_every_reason_and_changes_nothing(
    workspace: Any,
) -> None:
    ws = workspace
    champion = ws.mlops("run", "penguins", "--promote", "staging", "--promote", "prod")
    assert champion.exit_code == 0, champion.output
    before = ws.snapshot()
    assert before["registry"]["penguins"][1]["champion"] == "1"

    worse = ws.mlops("run", "penguins", "--set", "features=[island]")

    assert worse.exit_code == 1, worse.output
    gates = json.loads((ws.report_dir("penguins") / "gates.json").read_text(encoding="utf-8"))
    failures = [r for r in gates["results"] if not r["passed"]]
    # Species from the island alone: below the absolute bar and worse than the champion.
    assert {f["gate"] for f in failures} >= {"threshold:accuracy", "threshold:f1_macro", "champion"}
    assert f"rejected by {len(failures)} gate(s)" in worse.stderr
    for failure in failures:
        assert f"- {failure['gate']}: {failure['detail']}" in worse.stderr
    assert ws.snapshot() == before


def test_register_refuses_with_exit_1_a_run_whose_gates_failed(workspace: Any) -> None:
    ws = workspace
    run_id = run_id_of(ws.mlops("train", "penguins", "--set", "features=[island]"))
    assert ws.mlops("evaluate", "penguins").exit_code == 0
    gated = ws.mlops("gate", "penguins")
    assert gated.exit_code == 1, gated.output
    before = ws.snapshot()

    refused = ws.mlops("register", "penguins", "--run-id", run_id)

    assert refused.exit_code == 1, refused.output
    assert "failed its gates" in refused.stderr
    assert ws.snapshot() == before
    assert "penguins" not in before["registry"]


def test_register_refuses_with_exit_2_a_run_that_was_never_gated(workspace: Any) -> None:
    ws = workspace
    run_id_of(ws.mlops("train", "penguins"))
    before = ws.snapshot()

    refused = ws.mlops("register", "penguins")

    assert refused.exit_code == 2, refused.output
    assert "not been gated" in refused.stderr
    assert ws.snapshot() == before
    assert "penguins" not in before["registry"]


def test_new_model_scaffolds_a_definition_that_loads_and_passes_check(workspace: Any) -> None:
    from pipelines.core.definitions import load_model
    from pipelines.core.estimators import build_pipeline

    ws = workspace
    result = ws.mlops(
        "new-model",
        "penguin_size",
        "--dataset",
        "penguins",
        "--task",
        "regression",
        "--target",
        "body_mass_g",
        "--features",
        "bill_length_mm,flipper_length_mm,island",
        "--owner",
        "team: birds # not a comment",
    )
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path == ws.model_yaml("penguin_size")

    model = load_model(ws.root / "models", ws.root / "data", "penguin_size")
    assert model.definition.task.value == "regression"
    assert model.definition.target == "body_mass_g"
    assert model.definition.features == ["bill_length_mm", "flipper_length_mm", "island"]
    assert model.definition.owner == "team: birds # not a comment"
    build_pipeline(model)
    checked = ws.mlops("check")
    assert checked.exit_code == 0, checked.output
    assert "penguin_size" in discover_models(ws.root / "models")


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder (None) under ``root``."""
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")
    }


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("../evil", [], "not a valid model name"),
        ("Evil", [], "not a valid model name"),
        ("penguins", [], "already exists"),
        ("fresh", ["--target", "no_such_column"], "no_such_column"),
        ("fresh", ["--task", "ranking"], "task must be one of"),
    ],
    ids=["path-escape", "upper-case", "existing-model", "unknown-target", "unknown-task"],
)
def test_new_model_rejects_bad_input_with_exit_2_and_leaves_nothing_behind(
    workspace: Any, name: str, extra: list[str], message: str
) -> None:
    ws = workspace
    before = tree(ws.root.parent)
    options = {"--dataset": "penguins", "--task": "classification", "--target": "species"}
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        options[key] = value

    result = ws.mlops("new-model", name, *[x for pair in options.items() for x in pair])

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert tree(ws.root.parent) == before
    assert sorted(p.name for p in (ws.root / "models").iterdir()) == sorted(EXAMPLES)


def test_a_registry_used_earlier_in_the_process_does_not_capture_later_commands(
    workspace: Any, make_workspace: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A notebook, the demo or a test may connect to one registry, then run the CLI on another.

    The later command is configured only by MLOPS_ROOT and MLOPS_HOME, so it must use the
    embedded registry under its own MLOPS_HOME.
    """
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    monkeypatch.chdir(tmp_path)  # where MLflow would put artifacts of a misdirected run
    earlier = make_workspace("earlier")
    earlier.client()
    try:
        result = CliRunner().invoke(
            app,
            ["train", "penguins"],
            env={"MLOPS_ROOT": str(workspace.root), "MLOPS_HOME": str(workspace.home)},
        )
    finally:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert result.exit_code == 0, result.output
    run_id = run_id_of(result)

    assert workspace.client().get_run(run_id).info.run_id == run_id
    assert earlier.client().search_experiments(filter_string="name = 'mlops/penguins'") == []
