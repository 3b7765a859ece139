"""``slipway endpoint ...``: deploy, serving limits, the traffic plan, the stop switch,
shadow reports.

slipway endpoint deploy churn --model churn --version 3 --max-inflight 32
slipway endpoint limits churn --timeout 2 --max-queue 16 --clear batch-wait-ms
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
from slipway.serving.limits import LIMIT_NAMES

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
    "limits",
    "effective_limits",
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
    own = {k: v for k, v in (data.get("limits") or {}).items() if v is not None}
    shown["limits"] = _limits_text(own) if own else "the server's settings"
    effective = data.get("effective_limits")
    shown["effective_limits"] = _limits_text(effective) if effective else None
    return shown


def _limits_text(limits: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value:g}" for name, value in limits.items())


# The limit options of ``deploy`` and ``limits``; None: not given (keeps its value).
_MAX_INFLIGHT = typer.Option(None, help="Requests run at once per worker.")
_MAX_QUEUE = typer.Option(None, help="Requests waiting per worker; beyond it: 503.")
_TIMEOUT = typer.Option(
    None, "--timeout", help="Request timeout in seconds: not started by then, 504."
)
_BATCH_MAX_ROWS = typer.Option(
    None, help="Most rows merged into one model call; 0 turns micro-batching off."
)
_BATCH_WAIT_MS = typer.Option(None, help="Longest wait for more requests when idle (ms).")
# --clear accepts a limit's option name or its field name.
_CLEAR_NAMES = {
    "max-inflight": "max_inflight",
    "max-queue": "max_queue",
    "timeout": "request_timeout_s",
    "batch-max-rows": "batch_max_rows",
    "batch-wait-ms": "batch_wait_ms",
    **{name: name for name in LIMIT_NAMES},
}


def _given_limits(
    max_inflight: int | None,
    max_queue: int | None,
    timeout: float | None,
    batch_max_rows: int | None,
    batch_wait_ms: float | None,
) -> dict[str, int | float]:
    given = {
        "max_inflight": max_inflight,
        "max_queue": max_queue,
        "request_timeout_s": timeout,
        "batch_max_rows": batch_max_rows,
        "batch_wait_ms": batch_wait_ms,
    }
    return {name: value for name, value in given.items() if value is not None}


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
    max_inflight: int = _MAX_INFLIGHT,
    max_queue: int = _MAX_QUEUE,
    timeout: float = _TIMEOUT,
    batch_max_rows: int = _BATCH_MAX_ROWS,
    batch_wait_ms: float = _BATCH_WAIT_MS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Serve MODEL version VERSION on endpoint NAME (created if new). The limit options
    override the server's settings on NAME, as ``slipway endpoint limits`` does."""
    limits = _given_limits(max_inflight, max_queue, timeout, batch_max_rows, batch_wait_ms)
    with client() as c:
        data = c.deploy(
            name,
            model=model,
            version=version,
            contract_mode=contract_mode,
            allow_breaking=allow_breaking,
            reason=reason,
            **limits,
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


@app.command("limits")
def limits(
    name: str,
    max_inflight: int = _MAX_INFLIGHT,
    max_queue: int = _MAX_QUEUE,
    timeout: float = _TIMEOUT,
    batch_max_rows: int = _BATCH_MAX_ROWS,
    batch_wait_ms: float = _BATCH_WAIT_MS,
    clear: list[str] = typer.Option(
        [],
        help="A limit to hand back to the server's setting (max-inflight, max-queue, "
        "timeout, batch-max-rows, batch-wait-ms, or all); repeat.",
    ),
    reason: str = typer.Option("", help="Why (audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set NAME's own serving limits over the server's settings; limits not named keep
    their value. Every worker applies them at its next sync (sync_interval_s)."""
    changes: dict[str, int | float | None] = dict(
        _given_limits(max_inflight, max_queue, timeout, batch_max_rows, batch_wait_ms)
    )
    for item in clear:
        if item == "all":
            cleared = list(LIMIT_NAMES)
        elif item in _CLEAR_NAMES:
            cleared = [_CLEAR_NAMES[item]]
        else:
            raise ValidationFailed.field(
                "--clear", f"unknown limit {item!r}; one of {', '.join(_CLEAR_NAMES)} or all"
            )
        for limit in cleared:
            if changes.get(limit) is not None:
                raise ValidationFailed.field("--clear", f"{limit} is both set and cleared")
            changes[limit] = None
    if not changes:
        raise ValidationFailed.field("limits", "give a limit to set or one to --clear")
    with client() as c:
        data = c.set_endpoint_limits(name, reason=reason, **changes)
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
