"""``slipway audit verify|list|export``.

``verify`` runs locally, straight against a store and an audit directory (it only
reads): it is the operator's check, and must work on a backup copy with no server.
``list`` and ``export`` go through the API like every other command.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client, settings
from slipway.errors import NotFound

app = typer.Typer(help="The audit log.", no_args_is_help=True)

EVENT_COLUMNS = ("seq", "created_at", "actor", "action", "target_kind", "target", "reason")


@app.command("verify")
def verify(
    database_url: str = typer.Option(
        None, help="Store to check (default: the configured one); e.g. a backup copy."
    ),
    audit_dir: Path = typer.Option(
        None, help="Directory with signing.pub and checkpoints/ (default: configured)."
    ),
    public_key: Path = typer.Option(
        None, help="A trusted copy of signing.pub kept elsewhere (default: in --audit-dir)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recompute the hash chain and check every signed checkpoint; exit 1 if tampered."""
    # Imported here: SQLAlchemy is a fifth of the CLI's start-up, and only this command
    # (of the client's) opens a store.
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from slipway.audit.verify import verify as verify_log
    from slipway.store.engine import open_engine

    s = settings()
    url = database_url or s.resolved_database_url
    folder = audit_dir or s.resolved_audit_dir
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        # open_engine would create an empty file where a path was mistyped.
        if not Path(parsed.database).expanduser().is_file():
            raise NotFound(f"no store at {parsed.database}")
    engine = open_engine(url)
    try:
        if not inspect(engine).has_table("audit_head"):
            raise NotFound("the store has no audit log (run slipway init or migrate it)")
        report = verify_log(engine, folder, public_key=public_key)
    finally:
        engine.dispose()
    if as_json:
        output.emit_json(report.to_dict())
    else:
        state = "[green]ok[/green]" if report.ok else "[red]TAMPERED[/red]"
        output.console.print(f"audit log: {state}", highlight=False)
        output.record(
            report.to_dict(),
            (
                "events",
                "checkpoints_checked",
                "verified_up_to",
                "unverified_tail",
                "first_bad_seq",
                "reason",
            ),
        )
        if report.ok and report.unverified_tail:
            output.console.print(
                f"{report.unverified_tail} event(s) after the last checkpoint are consistent "
                "but not yet covered by a signature.",
                highlight=False,
            )
    if not report.ok:
        raise typer.Exit(1)


@app.command("list")
def list_(
    actor: str = typer.Option(None, help="Events by this principal."),
    target: str = typer.Option(None, help="Events on this model, endpoint, token..."),
    action: str = typer.Option(None, help="Events of this action, e.g. token.revoke."),
    since: str = typer.Option(None, help="From this UTC time (ISO 8601), inclusive."),
    until: str = typer.Option(None, help="Before this UTC time (ISO 8601)."),
    after_seq: int = typer.Option(0, help="Only events after this sequence number."),
    limit: int = typer.Option(100, help="At most this many events (up to 1000)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List audit events, oldest first."""
    with client() as c:
        found = c.audit_events(
            actor=actor,
            target=target,
            action=action,
            since=since,
            until=until,
            after_seq=after_seq,
            limit=limit,
        )
    output.emit_json(found) if as_json else output.table(found, EVENT_COLUMNS, "audit events")


@app.command("export")
def export(
    out: Path = typer.Option(None, "--out", help="Write JSONL here (default: stdout)."),
    actor: str = typer.Option(None),
    target: str = typer.Option(None),
    action: str = typer.Option(None),
    since: str = typer.Option(None, help="ISO 8601, inclusive."),
    until: str = typer.Option(None, help="ISO 8601, exclusive."),
) -> None:
    """Export audit events as JSON Lines, one event per line."""
    filters: dict[str, Any] = {
        "actor": actor,
        "target": target,
        "action": action,
        "since": since,
        "until": until,
    }
    sink: Any = out.open("w", encoding="utf-8") if out else nullcontext(sys.stdout)
    count = 0
    with client() as c, sink as f:
        stream: IO[str] = f
        for line in c.audit_export(**filters):
            stream.write(line + "\n")
            count += 1
    if out:
        output.err_console.print(f"wrote {count} event(s) to {out}", highlight=False)
