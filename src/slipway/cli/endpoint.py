"""``slipway endpoint deploy|list|show``."""

from __future__ import annotations

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client

app = typer.Typer(help="Endpoints: the names callers use.", no_args_is_help=True)

COLUMNS = (
    "name",
    "model",
    "version",
    "serving_version",
    "previous_version",
    "contract_mode",
    "load_error",
    "updated_at",
)


@app.command("deploy")
def deploy(
    name: str,
    model: str = typer.Option(..., help="Model name."),
    version: int = typer.Option(..., help="Version number (must be ready)."),
    contract_mode: str = typer.Option(
        None, help="reject (bad rows fail the request) or partial (good rows go on)."
    ),
    allow_breaking: bool = typer.Option(
        False, help="Deploy even if the input contract refuses what callers send today."
    ),
    reason: str = typer.Option("", help="Why (required with --allow-breaking; audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Serve MODEL version VERSION on endpoint NAME (created if new)."""
    with client() as c:
        data = c.deploy(
            name,
            model=model,
            version=version,
            contract_mode=contract_mode,
            allow_breaking=allow_breaking,
            reason=reason,
        )
    output.emit_json(data) if as_json else output.record(data, COLUMNS)


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List endpoints and what each serves."""
    with client() as c:
        found = c.list_endpoints()
    output.emit_json(found) if as_json else output.table(found, COLUMNS, "endpoints")


@app.command("show")
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show one endpoint."""
    with client() as c:
        data = c.get_endpoint(name)
    output.emit_json(data) if as_json else output.record(data, COLUMNS)
