"""``slipway approval list|request|show|approve|reject`` and the evaluation records
behind them (``slipway model evaluate|evaluations``, registered in ``cli/model.py``).

    slipway model evaluate churn 4 eval.yaml     # metrics, slices, baseline, dataset
    slipway approval request churn 4 --note "ready for the pricing endpoint"
    slipway approval list --state pending        # the queue
    slipway approval approve 0190... --rationale "AUC 0.91 on every region"

An approval is bound to the version's evidence; once a new evaluation is recorded it
shows as stale (``valid`` no) and a new request is needed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer
import yaml

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.errors import InvalidRequest

app = typer.Typer(
    help="Approvals: a request for a version, then a decision with a rationale.",
    no_args_is_help=True,
)

LIST_COLUMNS = (
    "id",
    "model",
    "version",
    "state",
    "requested_by",
    "decided_by",
    "valid",
    "stale_because",
)
APPROVAL_COLUMNS = (
    "id",
    "model",
    "version",
    "state",
    "valid",
    "stale_because",
    "requested_by",
    "requested_at",
    "request_note",
    "decided_by",
    "decided_at",
    "rationale",
    "decider_roles",
    "artifact_sha256",
    "contract_sha256",
    "evaluation_digest",
)
EVALUATION_COLUMNS = (
    "model",
    "version",
    "id",
    "derived",
    "evaluated_at",
    "digest",
    "dataset",
    "created_by",
    "created_at",
)
HISTORY_COLUMNS = ("id", "evaluated_at", "digest", "created_by", "created_at", "metrics")
EVALUATION_KEYS = ("metrics", "slices", "baseline", "dataset", "evaluated_at")


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    """An approval as a table row: valid as yes/no, what went stale as one phrase, the
    binding flattened."""
    stale = data.get("stale_because") or []
    return {
        **data,
        **(data.get("binding") or {}),
        "valid": "yes" if data.get("valid") else "no",
        "stale_because": "stale: " + ", ".join(stale) if stale else "-",
    }


def _print(data: dict[str, Any], as_json: bool) -> None:
    output.emit_json(data) if as_json else output.record(_shown(data), APPROVAL_COLUMNS)


# -- slipway approval ...  ---------------------------------------------------------------
@app.command("list")
def list_(
    model: str = typer.Option(None, help="Only this model's approvals."),
    version: int = typer.Option(None, help="Only this version's (with --model)."),
    state: str = typer.Option(None, help="pending (the queue), approved, rejected or superseded."),
    limit: int = typer.Option(500, help="At most this many, newest request first."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List approvals, newest request first; --state pending is the queue."""
    with client() as c:
        found = c.list_approvals(model=model, version=version, state=state, limit=limit)
    if as_json:
        output.emit_json(found)
    else:
        output.table([_shown(a) for a in found], LIST_COLUMNS, "approvals")


@app.command("request")
def request(
    model: str,
    version: int,
    note: str = typer.Option("", help="What the approver should know (audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ask for an approval of VERSION of MODEL (it must be ready)."""
    with client() as c:
        data = c.request_approval(model, version, note=note)
    _print(data, as_json)


@app.command("show")
def show(approval_id: str, as_json: bool = JSON_OPTION) -> None:
    """Show an approval, the evidence it is bound to and whether it still is."""
    with client() as c:
        data = c.get_approval(approval_id)
    _print(data, as_json)


@app.command("approve")
def approve(
    approval_id: str,
    rationale: str = typer.Option(..., help="Why it may go to production (required)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Approve a pending request; whoever registered the version may not."""
    with client() as c:
        data = c.approve(approval_id, rationale=rationale)
    _print(data, as_json)


@app.command("reject")
def reject(
    approval_id: str,
    rationale: str = typer.Option(..., help="Why it may not (required)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Reject a pending request; whoever registered the version may not."""
    with client() as c:
        data = c.reject(approval_id, rationale=rationale)
    _print(data, as_json)


# -- slipway model evaluate|evaluations ----------------------------------------------------
def evaluate(
    model: str,
    version: int,
    file: Path = typer.Argument(
        ..., help="YAML or JSON: metrics, and optionally slices, baseline, dataset, evaluated_at."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record an evaluation of VERSION of MODEL from FILE; it becomes the version's
    evidence (approvals given on the previous evidence become stale)."""
    record = read_evaluation(file)
    with client() as c:
        data = c.record_evaluation(model, version, **record)
    if as_json:
        output.emit_json(data)
        return
    _print_evaluation(data)


def evaluations(model: str, version: int, as_json: bool = JSON_OPTION) -> None:
    """Show the evidence of VERSION of MODEL (its newest evaluation record, or the
    metrics it was registered with) and every recorded evaluation, newest first."""
    with client() as c:
        data = c.get_evaluations(model, version)
    if as_json:
        output.emit_json(data)
        return
    current = data.get("current")
    if current is None:
        output.console.print(f"{model} v{version}: no evaluation recorded", highlight=False)
    else:
        _print_evaluation(current)
    output.table(data.get("history") or [], HISTORY_COLUMNS, "recorded evaluations")


def _print_evaluation(record: dict[str, Any]) -> None:
    output.record(record, EVALUATION_COLUMNS)
    rows = [{"slice": "(overall)", **record.get("metrics", {})}]
    rows += [{"slice": name, **values} for name, values in (record.get("slices") or {}).items()]
    if record.get("baseline"):
        rows.append({"slice": "(baseline)", **record["baseline"]})
    metrics = sorted({k for row in rows for k in row if k != "slice"})
    output.table(rows, ("slice", *metrics), "metrics")


def read_evaluation(path: Path) -> dict[str, Any]:
    """An evaluation record from a YAML (or JSON: YAML is a superset) file. The server
    checks the values and names the field that is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f", line {where.line + 1}" if where is not None else ""
        raise InvalidRequest(f"{path}: not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{path}: expected an object with metrics (and slices...)")
    unknown = sorted(set(data) - set(EVALUATION_KEYS))
    if unknown:
        raise InvalidRequest(
            f"{path}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"expected {', '.join(EVALUATION_KEYS)}"
        )
    when = data.get("evaluated_at")
    # YAML reads an unquoted timestamp as a datetime (or a date); the API takes ISO text,
    # so a time without a zone still reaches the server and is refused there by name.
    if isinstance(when, dt.date):
        data["evaluated_at"] = when.isoformat()
    return data
