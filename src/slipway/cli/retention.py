"""``slipway retention status|purge`` and ``slipway model hold|release``: how long
prediction records and quarantined rows are kept, and the models that keep everything.

    slipway retention status                  # days per risk tier; what a purge would delete
    slipway retention purge --dry-run         # the same report, nothing deleted
    slipway retention purge                   # delete what is past retention (audited)
    slipway model hold churn --reason "litigation hold, case 2025-17"
    slipway model release churn --reason "case closed"
"""

from __future__ import annotations

from typing import Any

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client

app = typer.Typer(
    help="Retention: how long prediction records and quarantined rows are kept.",
    no_args_is_help=True,
)

PURGE_COLUMNS = (
    "model",
    "risk_tier",
    "days",
    "cutoff",
    "prediction_records",
    "feedback",
    "quarantine",
)
HELD_COLUMNS = ("model", "risk_tier", "held_by", "held_at", "reason", "kept")
HOLD_KEYS = ("name", "risk_tier", "status", "legal_hold_at", "legal_hold_by", "legal_hold_reason")
_REASON = typer.Option(..., "--reason", help="Why (required; audited).")


@app.command("status")
def status(as_json: bool = JSON_OPTION) -> None:
    """Retention days per risk tier, how often the purge runs, and what a purge now would
    delete per model (models under legal hold are listed as skipped)."""
    with client() as c:
        data = c.retention_status()
    if as_json:
        output.emit_json(data)
        return
    interval = data.get("interval_s") or 0
    every = f"every {interval:g} s" if interval > 0 else "off (SLIPWAY_RETENTION_INTERVAL_S=0)"
    output.console.print(f"purge job: {every}", highlight=False)
    _report(data, "would be purged now")


@app.command("purge")
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be purged."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete prediction records (with their feedback) and quarantined rows past their
    model's retention; models under legal hold keep everything. Audited as one event."""
    with client() as c:
        data = c.purge_retention(dry_run=dry_run)
    if as_json:
        output.emit_json(data)
        return
    _report(data, "would be purged" if dry_run else "purged")
    event = data.get("audit_event")
    if event:
        output.console.print(f"audit event #{event['seq']} retention.purge", highlight=False)


def _report(data: dict[str, Any], what: str) -> None:
    days = ", ".join(f"{tier} {n} days" for tier, n in data["days"].items())
    output.console.print(f"kept: {days}", highlight=False)
    totals = data["totals"]
    counted = ", ".join(f"{n} {table}" for table, n in totals.items())
    if data["models"]:
        output.table(data["models"], PURGE_COLUMNS, title=what)
    output.console.print(f"{what}: {counted}", highlight=False)
    if data["held"]:
        output.table(data["held"], HELD_COLUMNS, title="skipped: under legal hold")


def hold(name: str, reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Put model NAME under legal hold: retention purges nothing of it until released."""
    with client() as c:
        data = c.hold_model(name, reason=reason)
    _model(data, as_json)


def release(name: str, reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Lift the legal hold of model NAME; the next purge applies retention to it again."""
    with client() as c:
        data = c.release_model(name, reason=reason)
    _model(data, as_json)


def _model(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(data)
    else:
        output.record(data, HOLD_KEYS)
