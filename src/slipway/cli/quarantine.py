"""``slipway quarantine list|show|export|replay``: rows a contract refused."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client

app = typer.Typer(
    help="Rows refused by a data contract, kept with their reasons.", no_args_is_help=True
)

COLUMNS = ("id", "created_at", "version", "row_index", "status", "attempts", "reasons", "row")


@app.command("list")
def list_(
    endpoint: str,
    status: str = typer.Option(None, help="open or resolved."),
    limit: int = typer.Option(100, help="At most this many rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List quarantined rows of ENDPOINT (pii fields shown masked)."""
    with client() as c:
        data = c.list_quarantine(endpoint, status=status, limit=limit)
    if as_json:
        output.emit_json(data)
        return
    output.table(
        data["rows"], COLUMNS, f"{endpoint}: {data['open']} open, {data['resolved']} resolved"
    )


@app.command("show")
def show(quarantine_id: str, as_json: bool = JSON_OPTION) -> None:
    """Show one quarantined row with its reasons."""
    with client() as c:
        data = c.get_quarantined(quarantine_id)
    output.emit_json(data) if as_json else output.record(data)


@app.command("export")
def export(
    endpoint: str,
    status: str = typer.Option(None, help="open or resolved."),
    out: Path = typer.Option(None, help="Write JSONL here instead of stdout."),
) -> None:
    """Export quarantined rows of ENDPOINT as JSON lines."""
    with client() as c:
        lines = c.export_quarantine(endpoint, status=status)
        if out is None:
            for line in lines:
                sys.stdout.write(line + "\n")
            return
        count = 0
        with out.open("w") as f:
            for line in lines:
                f.write(line + "\n")
                count += 1
    output.err_console.print(f"wrote {count} rows to {out}")


@app.command("replay")
def replay(
    endpoint: str,
    quarantine_id: list[str] = typer.Option([], "--id", help="Only this row; repeat."),
    limit: int = typer.Option(1000, help="At most this many rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send open rows through ENDPOINT again; rows that now pass are predicted and resolved."""
    with client() as c:
        data = c.replay_quarantine(endpoint, ids=quarantine_id or None, limit=limit)
    if as_json:
        output.emit_json(data)
    else:
        output.console.print(
            f"replayed {data['replayed']}: {data['resolved']} resolved, "
            f"{data['still_failing']} still failing"
        )
    if data["still_failing"]:
        raise typer.Exit(1)
