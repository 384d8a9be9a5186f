"""``mlops demo``: the whole story on the embedded default, start to finish, in about a minute.

It works on a scratch repository under the state folder: the example models and their data
(from models/ and data/, or from tests/examples/ once `mlops init --drop-examples` moved them
there), the template's own environments dev, staging and prod with nothing pinned, and its own
SQLite registry. So the demo never moves the repository's real pins, and it runs the same
whatever environments the repository itself has.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from pipelines.core.examples import demo_repository, examples_root
from pipelines.core.registry import aliases_of, connect
from pipelines.core.settings import Settings
from pipelines.stages.console import print_gates
from pipelines.stages.promote import promote, rollback
from pipelines.stages.run import run_model
from pipelines.stages.status import model_status

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.stages.run import Outcome

EXAMPLES = ("penguins", "seattle_weather")
# A deliberately worse candidate: the species from the island alone.
WORSE: tuple[str, dict[str, object]] = ("penguins", {"features": ["island"]})
# A second, different but sound candidate, so there is something to roll back from.
SECOND: tuple[str, dict[str, object]] = (
    "seattle_weather",
    {"estimator.params.max_iter": 300, "estimator.params.learning_rate": 0.04},
)


def run_demo(settings: Settings, *, keep: bool = False) -> None:

    console = Console()
    started = time.perf_counter()
    workspace = settings.state_dir / "demo"
    examples = examples_root(settings.root)  # before anything is removed: no examples, no demo
    if not keep:
        shutil.rmtree(workspace, ignore_errors=True)
    repo = demo_repository(examples, workspace / "repo")
    demo_settings = Settings(root=repo, home=workspace / "state", tracking_uri=None)
    console.print(Rule("MLOps template demo"))
    console.print(f"workspace: {repo}\nregistry:  {demo_settings.resolved_tracking_uri()}")
    client = connect(demo_settings)
    timings: dict[str, float] = {}

    console.print(Rule("1. Train, gate, register and promote the example models"))
    for name in EXAMPLES:
        outcome = run_and_show(console, client, demo_settings, name, {}, ["staging", "prod"])
        _add_timings(timings, outcome)

    console.print(Rule("2. A deliberately worse candidate is rejected"))
    name, overrides = WORSE
    before = _registry_state(client, name)
    console.print(f"{name} with {overrides}: trained only on the island")
    outcome = run_and_show(console, client, demo_settings, name, overrides, ["staging"])
    _add_timings(timings, outcome)
    after = _registry_state(client, name)
    console.print(
        f"registry unchanged: {before == after} (versions and aliases {after}); "
        "`mlops run` would exit 1"
    )

    console.print(Rule("3. A new version reaches prod, then prod is rolled back"))
    name, overrides = SECOND
    outcome = run_and_show(console, client, demo_settings, name, overrides, ["staging"])
    _add_timings(timings, outcome)
    start = time.perf_counter()
    move = promote(client, demo_settings, name, "prod")
    console.print(f"{name}: prod v{move.from_version} -> v{move.to_version} (champion)")
    move = rollback(client, demo_settings, name, "prod")
    console.print(
        f"{name}: rollback prod v{move.from_version} -> v{move.to_version} (champion again)"
    )
    timings["promote/rollback"] = timings.get("promote/rollback", 0) + time.perf_counter() - start

    console.print(Rule("Where things stand"))
    _print_status(console, client, demo_settings)
    stage_table = Table(title="time per stage (all models)")
    stage_table.add_column("stage")
    stage_table.add_column("seconds", justify="right")
    for stage, seconds in timings.items():
        stage_table.add_row(stage, f"{seconds:.2f}")
    stage_table.add_row(
        "[bold]total (with start-up)[/]", f"[bold]{time.perf_counter() - started:.2f}[/]"
    )
    console.print(stage_table)
    console.print(f"model cards: {demo_settings.reports_dir}/<model>/model_card.md")
    console.print(f"pins:        {repo / 'environments'}")


def run_and_show(
    console: Console,
    client: MlflowClient,
    settings: Settings,
    name: str,
    overrides: dict[str, object],
    environments: list[str],
) -> Outcome:

    outcome = run_model(
        client,
        settings,
        name,
        overrides=overrides,
        promote_to=environments,
        progress=lambda message: console.print(f"  [dim]{message}[/]"),
    )
    if outcome.gates:
        print_gates(outcome.gates, title=f"{name}: gates")
    if outcome.rejected:
        console.print(f"[bold red]rejected[/]: {outcome.rejected}")
    else:
        moves = ", ".join(
            f"{m.environment}: {_v(m.from_version)} -> v{m.to_version}" for m in outcome.promotions
        )
        console.print(f"[green]registered[/] {name} v{outcome.version}; promoted {moves}")
    return outcome


def _add_timings(timings: dict[str, float], outcome: Outcome) -> None:
    for stage, seconds in outcome.timings.items():
        key = "promote" if stage.startswith("promote") else stage
        timings[key] = timings.get(key, 0) + seconds


def _registry_state(client: MlflowClient, name: str) -> tuple[list[str], dict[str, str]]:

    versions = sorted(v.version for v in client.search_model_versions(f"name = '{name}'"))
    return [str(v) for v in versions], aliases_of(client, name)


def _print_status(console: Console, client: MlflowClient, settings: Settings) -> None:

    table = Table(title="registry and pins")
    for column in (
        "model",
        "champion",
        "challenger",
        "dev",
        "staging",
        "prod",
        "metrics of champion",
    ):
        table.add_column(column)
    for s in model_status(client, settings, list(EXAMPLES)):
        champion = next((v for v in s.versions if v["version"] == s.champion), None)
        metrics = (
            ", ".join(f"{k}={v}" for k, v in sorted(champion["metrics"].items())[:4])
            if champion
            else "-"
        )
        table.add_row(
            s.model,
            _v(s.champion),
            _v(s.challenger),
            *(_v(s.pins.get(e)) for e in ("dev", "staging", "prod")),
            metrics,
        )
    console.print(table)


def _v(version: str | None) -> str:
    return f"v{version}" if version else "-"
