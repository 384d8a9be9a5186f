"""Terminal output shared by the CLI and the demo: rich is imported only when printing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.stages.gates import GateReport


def escape(text: str) -> str:
    """Text shown verbatim by rich, even with [brackets] in it (YAML errors have them)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_gates(report: GateReport, title: str = "gates") -> None:
    """Every gate's verdict, threshold and explanation, as a table on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in ("gate", "verdict", "threshold", "detail"):
        table.add_column(column, overflow="fold")
    colours = {"pass": "green", "FAIL": "bold red", "skipped": "yellow"}
    for r in report.results:
        verdict = f"[{colours[r.verdict]}]{r.verdict}[/]"
        table.add_row(escape(r.gate), verdict, escape(r.threshold), escape(r.detail))
    Console(stderr=True, highlight=False).print(table)
