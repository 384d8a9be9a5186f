"""``mlops demo``: the whole story on the embedded default."""

from __future__ import annotations

import typer

from pipelines.cli.common import (
    current_settings,
    guarded,
)

commands = typer.Typer()


@commands.command()
@guarded
def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the previous demo workspace's registry."),
    drift: bool = typer.Option(
        False, "--drift", help="Run the drift-to-retrain loop instead (same as demo-drift)."
    ),
) -> None:
    """Run the whole story on the embedded default, in a scratch copy of the repository."""
    if drift:
        from monitoring.demo_loop import run_drift_demo

        run_drift_demo(current_settings(), keep=keep)
        return
    from pipelines.stages.demo import run_demo

    run_demo(current_settings(), keep=keep)
