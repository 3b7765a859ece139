"""``slipway drift REF CUR``: compare two local data files column by column, for CI.

Runs locally, with no server. Exit codes: 0 when it ran (drift or not), 3 with
``--fail-on-drift`` when any column drifted, 1 on an unreadable file or unknown column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from slipway.cli import output
from slipway.cli.common import JSON_OPTION

DRIFT_EXIT = 3
COLUMNS = ("column", "kind", "statistic", "score", "threshold", "verdict", "severity", "psi", "n")
_VERDICT_STYLE = {"drift": "red", "ok": "green", "insufficient": "yellow"}
_RIGHT = ("score", "threshold", "psi", "n")
_STATISTIC = {"wasserstein_norm": "W1/std", "js_distance": "JS"}


def drift(
    reference: Path = typer.Argument(..., help="Reference data: .parquet, .csv, .json, .jsonl."),
    current: Path = typer.Argument(..., help="Current data, in any of the same formats."),
    columns: str = typer.Option(
        None, "--columns", help="Comma-separated columns to compare (default: all shared)."
    ),
    numeric_threshold: float = typer.Option(
        0.1, "--numeric-threshold", help="Wasserstein distance / reference std that is drift."
    ),
    categorical_threshold: float = typer.Option(
        0.1, "--categorical-threshold", help="Jensen-Shannon distance (base 2) that is drift."
    ),
    min_samples: int = typer.Option(
        500, "--min-samples", min=0, help="Fewer values on either side: 'insufficient'."
    ),
    as_json: bool = JSON_OPTION,
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help=f"Exit {DRIFT_EXIT} when any column drifted."
    ),
) -> None:
    """Which columns of CURRENT drifted from REFERENCE, judged by effect size."""
    from slipway.monitoring.drift import DriftThresholds
    from slipway.monitoring.offline import drift as compare

    thresholds = DriftThresholds(
        numeric_wasserstein=numeric_threshold,
        categorical_js=categorical_threshold,
        min_samples=min_samples,
    )
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    report = compare(str(reference), str(current), columns=names, thresholds=thresholds)
    if as_json:
        output.emit_json(report.to_dict())
    else:
        _table([_row(c) for c in report.columns])
        output.console.print(_summary(report), highlight=False)
    if fail_on_drift and report.drifted:
        raise typer.Exit(DRIFT_EXIT)


def _table(rows: list[dict[str, str]]) -> None:
    # Borderless, unlike output.table: nine columns fit an 80-column CI log uncut.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in _RIGHT else "left")
    for row in rows:
        table.add_row(*(row[col] for col in COLUMNS))
    output.console.print(table)


def _row(c: Any) -> dict[str, str]:
    style = _VERDICT_STYLE[c.verdict]
    return {
        "column": escape(c.column),
        "kind": c.kind[:3],
        "statistic": _STATISTIC[c.statistic],
        "score": _number(c.score),
        "threshold": f"{c.threshold:g}",
        "verdict": f"[{style}]{c.verdict}[/{style}]",
        "severity": c.severity,
        "psi": _number(c.psi),
        "n": f"{_count(c.n_reference)}/{_count(c.n_current)}",
    }


def _number(value: float | None) -> str:
    # Fixed decimals: "%g" would print 3.5e-05, which a narrow table cuts to "3.5".
    return "-" if value is None else f"{value:.3f}"


def _count(n: int) -> str:
    if n < 10_000:
        return str(n)
    return f"{n / 1_000_000:.1f}M" if n >= 1_000_000 else f"{n // 1000}k"


def _summary(report: Any) -> str:
    total = len(report.columns)
    insufficient = sum(c.verdict == "insufficient" for c in report.columns)
    tail = f"; {insufficient} with too few values" if insufficient else ""
    if report.drifted:
        names = ", ".join(escape(name) for name in report.drifted)
        return f"{len(report.drifted)} of {total} columns drifted: {names}{tail}"
    return f"no drift in {total} columns{tail}"
