"""How the CLI shows results: rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    # Plain print: rich would wrap long lines and break machine parsing.
    print(json.dumps(data, indent=2, default=str))


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str = "") -> None:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    t = Table(title=title or None)
    for i, col in enumerate(columns):
        # Ids are what the next command takes (approve ID, replay ID...): never cut them
        # short in a narrow terminal; the other columns give way.
        whole = col == "id" or col.endswith("_id")
        width = max((len(r[i]) for r in cells), default=0) if whole else None
        t.add_column(col, min_width=width, no_wrap=whole)
    for r in cells:
        t.add_row(*r)
    console.print(t)


def record(data: Mapping[str, Any], keys: Sequence[str] | None = None) -> None:
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    for key in keys or list(data):
        t.add_row(key, _cell(data.get(key)))
    console.print(t)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)
