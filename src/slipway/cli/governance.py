"""``slipway model list|card|score|attest|review|reviews``: the inventory, model cards,
the ML Test Score and periodic reviews. The commands join the ``model`` app (see the end
of cli/model.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.errors import InvalidRequest

INVENTORY_COLUMNS = (
    "name",
    "owner",
    "risk_tier",
    "deployed",
    "last_review",
    "next_review",
    "overdue",
    "test_score",
)
TEST_COLUMNS = ("id", "title", "points", "how", "evidence")
OUTPUT_OPTION = typer.Option(None, "--output", "-o", help="Write to this file, not stdout.")


def _write(text: str, destination: Path | None) -> None:
    """Text as is (no wrapping, no markup) to stdout or to ``destination``."""
    if destination is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    destination.write_text(text, encoding="utf-8")
    output.err_console.print(f"wrote {escape(str(destination))}")


def _day(iso: Any) -> str | None:
    return str(iso)[:10] if iso else None


def list_models(
    name: str = typer.Option(None, help="Names containing this."),
    tag: str = typer.Option(None),
    owner: str = typer.Option(None),
    status: str = typer.Option(None),
    export: str = typer.Option(None, "--export", help="csv or json: the whole inventory."),
    destination: Path = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The model inventory: owners, risk, deployments, reviews, ML Test Score.

    Next review is due by risk tier; overdue models are flagged."""
    if export not in (None, "csv", "json"):
        raise InvalidRequest(f"--export {export!r}: expected csv or json")
    filters = {"name": name, "tag": tag, "owner": owner, "status": status}
    with client() as c:
        if export == "csv":
            _write(c.inventory_csv(**filters), destination)
            return
        rows = c.inventory(**filters)
    if export == "json" or as_json:
        if destination is not None:
            _write(json.dumps(rows, indent=2), destination)
        else:
            output.emit_json(rows)
        return
    shown = [
        {
            **row,
            "deployed": "; ".join(row["deployed"]) or None,
            "last_review": _day(row["last_review"]),
            "next_review": _day(row["next_review"]),
            "overdue": "OVERDUE" if row["overdue"] else "no",
            "test_score": f"{row['test_score']:g} {row['band']}",
        }
        for row in rows
    ]
    output.table(shown, INVENTORY_COLUMNS, "models")


def card(
    name: str,
    version: int,
    format: str = typer.Option("markdown", "--format", help="markdown, html or json."),
    destination: Path = OUTPUT_OPTION,
) -> None:
    """The model card of a version, generated from slipway's records."""
    if format not in ("markdown", "html", "json"):
        raise InvalidRequest(f"--format {format!r}: expected markdown, html or json")
    with client() as c:
        if format == "json":
            text = json.dumps(c.model_card(name, version), indent=2)
        else:
            text = c.model_card_text(name, version, format=format)
    _write(text, destination)


def score(name: str, as_json: bool = JSON_OPTION) -> None:
    """The model's ML Test Score (Breck et al. 2017) with every test's evidence.

    The final score is the lowest section; its band says what it means."""
    with client() as c:
        data = c.test_score(name)
    if as_json:
        output.emit_json(data)
        return
    for section, found in data["sections"].items():
        rows = [{**t, "points": f"{t['points']:g}"} for t in found["tests"]]
        output.table(rows, TEST_COLUMNS, f"{section}: {found['score']:g} / 7")
    version = f"v{data['version']}" if data["version"] is not None else "no version"
    output.record(
        {
            "model": f"{data['model']} ({version})",
            "final": f"{data['final']:g} {data['band']}",
            "interpretation": data["interpretation"],
        }
    )


def attest(
    name: str,
    test: str = typer.Argument(..., help="The test, e.g. data-2 (see `slipway model score`)."),
    evidence: str = typer.Option(None, "--evidence", help="http(s) URL of the evidence."),
    note: str = typer.Option(None, "--note", help="What the evidence shows."),
    withdraw: bool = typer.Option(False, "--withdraw", help="Withdraw the attestation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Attest an ML Test Score test with a link to its evidence (0.5 points).

    With --withdraw, the standing attestation no longer counts."""
    with client() as c:
        if withdraw:
            data = c.withdraw_attestation(name, test)
        else:
            if not evidence or not note:
                raise InvalidRequest("--evidence and --note are required to attest")
            data = c.attest(name, test, evidence_url=evidence, note=note)
    if as_json:
        output.emit_json(data)
    elif withdraw:
        output.console.print(f"withdrew the attestation of {escape(test)} for {escape(name)}")
    else:
        output.record(data, ("model", "test", "title", "evidence_url", "note", "attested_by"))


def review(
    name: str,
    notes: str = typer.Option(..., "--notes", help="What the review found."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a periodic review of a model (the next is due by its risk tier)."""
    with client() as c:
        data = c.review_model(name, notes=notes)
    output.emit_json(data) if as_json else output.record(data)


def reviews(name: str, as_json: bool = JSON_OPTION) -> None:
    """A model's periodic reviews, newest first."""
    with client() as c:
        found = c.list_reviews(name)
    if as_json:
        output.emit_json(found)
    else:
        output.table(found, ("created_at", "reviewer", "notes"), f"reviews of {name}")
