"""``slipway endpoint ...``: deploy, the traffic plan, the stop switch, shadow reports.

slipway endpoint deploy churn --model churn --version 3
slipway endpoint traffic churn --canary 4 --weight 10 --shadow 5 --reason "try v4"
slipway endpoint stop churn --reason "bad scores" --fallback-version 2
slipway endpoint shadow-report churn --window 6h
"""

from __future__ import annotations

from typing import Any

import typer

from slipway.cli import output
from slipway.cli.common import JSON_OPTION, client
from slipway.cli.monitor import parse_window
from slipway.errors import ValidationFailed

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
# ``show`` and the commands that change the plan: what answers, and the stop switch.
DETAIL_COLUMNS = (
    *COLUMNS[:4],
    "canary",
    "shadows",
    "stopped",
    *COLUMNS[4:],
)
SHADOW_COLUMNS = (
    "version",
    "requests",
    "errors",
    "error_rate",
    "latency_p50_ms",
    "latency_p99_ms",
    "agreement",
    "compared",
    "output_shift",
)


def _plan(data: dict[str, Any]) -> dict[str, Any]:
    """The endpoint with its traffic plan and stop state in words, for a table."""
    traffic = data.get("traffic") or {}
    canary = traffic.get("canary")
    shown = dict(data)
    shown["canary"] = (
        f"v{canary} at {traffic.get('canary_weight', 0):g}% ({traffic.get('routing')})"
        if canary
        else None
    )
    shown["shadows"] = ", ".join(f"v{v}" for v in traffic.get("shadows") or []) or None
    if data.get("stopped"):
        fallback = data.get("fallback_version")
        answer = f"v{fallback} answers" if fallback else "answers 503"
        shown["stopped"] = f"since {data.get('stopped_at')}, {answer}: {data.get('stop_reason')}"
    else:
        shown["stopped"] = "no"
    return shown


def _show(data: dict[str, Any], as_json: bool) -> None:
    output.emit_json(data) if as_json else output.record(_plan(data), DETAIL_COLUMNS)


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
    """Show one endpoint: what it serves, its traffic plan and its stop state."""
    with client() as c:
        data = c.get_endpoint(name)
    _show(data, as_json)


@app.command("traffic")
def traffic(
    name: str,
    canary: int = typer.Option(None, help="A version answering part of the requests."),
    weight: float = typer.Option(None, help="The canary's share of requests, 0-100 percent."),
    shadow: list[int] = typer.Option(
        [], help="A version answering copies of every request (never returned); repeat."
    ),
    sticky: bool = typer.Option(
        False, help="Keep each X-Slipway-Routing-Key on one version (else random)."
    ),
    reason: str = typer.Option("", help="Why (audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set NAME's canary and shadows beside its primary.

    The plan given replaces the current one: without --canary the canary is removed,
    without --shadow the shadows are."""
    if canary is not None and weight is None:
        raise ValidationFailed.field("--weight", "give the canary's share with --canary")
    if canary is None and weight is not None:
        raise ValidationFailed.field("--weight", "needs --canary")
    with client() as c:
        data = c.set_traffic(
            name,
            canary=canary,
            weight=weight or 0.0,
            routing="sticky" if sticky else "random",
            shadows=shadow,
            reason=reason,
        )
    _show(data, as_json)


@app.command("rollback")
def rollback(
    name: str,
    reason: str = typer.Option("", help="Why (audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Serve NAME's previous primary version again (ends a rollout under way)."""
    with client() as c:
        data = c.rollback(name, reason=reason)
    _show(data, as_json)


@app.command("stop")
def stop(
    name: str,
    reason: str = typer.Option(..., help="Why (required; audited and shown to callers)."),
    fallback_version: int = typer.Option(
        None, help="Answer with this version instead of refusing with 503."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop NAME: predictions are refused (503 endpoint_stopped) or answered by the
    fallback version until it is resumed."""
    with client() as c:
        data = c.stop_endpoint(name, reason=reason, fallback_version=fallback_version)
    _show(data, as_json)


@app.command("resume")
def resume(
    name: str,
    reason: str = typer.Option("", help="Why (audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Let stopped endpoint NAME answer again with its traffic plan."""
    with client() as c:
        data = c.resume_endpoint(name, reason=reason)
    _show(data, as_json)


@app.command("shadow-report")
def shadow_report(
    name: str,
    window: str = typer.Option("1h", help="How far back: 90s, 15m, 1h, 7d."),
    as_json: bool = JSON_OPTION,
) -> None:
    """What NAME's shadows answered beside its primary: errors, latency, agreement with
    what callers got, and how far their predictions moved."""
    seconds = parse_window(window)
    with client() as c:
        data = c.shadow_report(name, window=seconds)
    if as_json:
        output.emit_json(data)
        return
    output.console.print(
        f"{data['endpoint']}: {data['window_start']} to {data['window_end']}", highlight=False
    )
    primary_columns = [c for c in SHADOW_COLUMNS[:6] if c != "errors"]
    output.table([data["primary"]], primary_columns, "primary")
    rows = [{**s, "output_shift": _shift(s.get("output_shift"))} for s in data["shadows"]]
    output.table(rows, SHADOW_COLUMNS, "shadows")


def _shift(shift: dict[str, Any] | None) -> str | None:
    if not shift:
        return None
    score = shift.get("score")
    shown = "-" if score is None else f"{score:.3f}"
    return f"{shown} {shift.get('statistic')} ({shift.get('verdict')})"
