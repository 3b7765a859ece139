"""``slipway rollout ...``: move an endpoint to a new version in judged steps.

    slipway rollout start churn --version 4 --steps 5,25,50,100 --step-duration 10m \\
        --threshold latency_p99.threshold=2 --threshold inconclusive_wait=2
    slipway rollout status churn          # the step, the weight, the last analysis
    slipway rollout pause churn --reason "holiday traffic"
    slipway rollout template put slow-ok slow-ok.yaml
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
import yaml

from slipway.cli import output
from slipway.cli.access import parse_duration
from slipway.cli.common import JSON_OPTION, client
from slipway.cli.monitor import span
from slipway.errors import InvalidRequest, ValidationFailed

app = typer.Typer(
    help="Rollouts: an endpoint moved to a new version step by step, judged at each.",
    no_args_is_help=True,
)
template_app = typer.Typer(help="Analysis templates: the checks rollouts are judged by.")
app.add_typer(template_app, name="template", no_args_is_help=True)

ROLLOUT_COLUMNS = (
    "id",
    "endpoint",
    "model",
    "from_version",
    "to_version",
    "state",
    "step",
    "steps",
    "weight",
    "step_duration",
    "routing",
    "template",
    "decision",
    "reason",
    "created_by",
    "created_at",
    "step_started_at",
    "finished_at",
)
LIST_COLUMNS = (
    "id",
    "endpoint",
    "from_version",
    "to_version",
    "state",
    "step",
    "weight",
    "created_at",
    "finished_at",
)
CHECK_COLUMNS = ("name", "status", "canary", "primary", "value", "threshold", "samples")
TEMPLATE_COLUMNS = ("name", "description", "inconclusive_wait")
TEMPLATE_CHECK_COLUMNS = ("check", "enabled", "critical", "threshold", "slack", "min_samples")
_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_REASON = typer.Option("", help="Why (audited).")


def parse_seconds(text: str, option: str) -> float:
    """ "90s", "5m", "1h" or plain seconds ("300") to seconds."""
    seconds = float(text) if _NUMBER.match(text.strip()) else parse_duration(text, option)
    if seconds <= 0:
        raise ValidationFailed.field(option, f"{text!r} must be longer than 0 seconds")
    return seconds


def parse_steps(text: str) -> list[float]:
    """ "5,25,50,100" to canary weights in percent (the server checks their order)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ValidationFailed.field(
            "--steps", f"{text!r} is not a list of percentages like 5,25,50,100"
        ) from None


def parse_thresholds(items: list[str]) -> dict[str, Any] | None:
    """``check.field=value`` into ``{"checks": {check: {field: value}}}``; ``field=value``
    (inconclusive_wait) at the top. Values: numbers, true or false (the server names the
    field if one is wrong)."""
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(path) or len(path) > 2 or not raw.strip():
            raise ValidationFailed.field(
                "--threshold",
                f"{item!r} is not check.field=value (latency_p99.threshold=2) "
                "or field=value (inconclusive_wait=2)",
            )
        value = _value(path[-1], raw.strip(), item)
        if len(path) == 1:
            out[path[0]] = value
        else:
            out.setdefault("checks", {}).setdefault(path[0], {})[path[1]] = value
    return out


def _value(field: str, raw: str, item: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return int(raw) if field == "min_samples" else float(raw)
    except ValueError:
        kind = "a whole number" if field == "min_samples" else "a number, true or false"
        raise ValidationFailed.field("--threshold", f"{item!r}: {field} must be {kind}") from None


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    """A rollout as a table row: the step as "2/4", the duration as "5m"."""
    steps = data.get("steps") or []
    step = data.get("step")
    shown_step = f"{step + 1}/{len(steps)}" if isinstance(step, int) and step >= 0 else "-"
    return {**data, "step": shown_step, "step_duration": _span(data.get("step_duration_s"))}


def _span(seconds: Any) -> str:
    """600.0 -> "10m"; a fraction of a second stays in seconds (1.5s)."""
    if isinstance(seconds, float) and seconds.is_integer():
        return span(int(seconds))
    return f"{seconds:g}s" if isinstance(seconds, float) else span(seconds)


def print_checks(analysis: dict[str, Any] | None, title: str) -> None:
    """The verdict and one row per check; each check's reason below the table."""
    if not analysis:
        output.console.print(f"{title}: none yet", highlight=False)
        return
    checks = analysis.get("checks") or []
    output.table(checks, CHECK_COLUMNS, f"{title}: {analysis.get('verdict', '-')}")
    for check in checks:
        if check.get("reason"):
            output.console.print(f"  {check['name']}: {check['reason']}", highlight=False)


def _acted(data: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        output.emit_json(data)
        return
    output.console.print(
        f"{verb} rollout {data['id']} of {data['endpoint']} "
        f"(v{data['from_version']} -> v{data['to_version']}): {data['state']}",
        highlight=False,
    )


# -- rollout ---------------------------------------------------------------------------------
@app.command("start")
def start(
    endpoint: str,
    version: int = typer.Option(..., help="The version to move to (must be ready)."),
    steps: str = typer.Option(None, help="Canary weights in percent [default: 5,25,50,100]."),
    step_duration: str = typer.Option(
        None, help="Time at each step: 90s, 5m, 1h or seconds [default: 5m]."
    ),
    template: str = typer.Option(None, help="Analysis template [default: default]."),
    threshold: list[str] = typer.Option(
        [],
        help="Override the template: check.field=value (latency_p99.threshold=2) or "
        "inconclusive_wait=2; repeat.",
    ),
    sticky: bool = typer.Option(
        False, help="Keep each X-Slipway-Routing-Key on one version (else random)."
    ),
    allow_breaking: bool = typer.Option(
        False, help="Go on even if the input contract refuses what callers send today."
    ),
    reason: str = typer.Option("", help="Why (required with --allow-breaking; audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move ENDPOINT to VERSION step by step; it promotes or rolls back by itself."""
    duration = parse_seconds(step_duration, "--step-duration") if step_duration else None
    with client() as c:
        data = c.start_rollout(
            endpoint,
            version=version,
            steps=parse_steps(steps) if steps else None,
            step_duration_s=duration,
            template=template,
            thresholds=parse_thresholds(threshold),
            routing="sticky" if sticky else None,
            allow_breaking=allow_breaking,
            reason=reason,
        )
    output.emit_json(data) if as_json else output.record(_shown(data), ROLLOUT_COLUMNS)


@app.command("status")
def status(endpoint: str, as_json: bool = JSON_OPTION) -> None:
    """ENDPOINT's rollout under way (or its last one) and its last analysis."""
    with client() as c:
        data = c.get_rollout(endpoint)
    if as_json:
        output.emit_json(data)
        return
    output.record(_shown(data), ROLLOUT_COLUMNS)
    print_checks(data.get("last_analysis"), "last analysis")


@app.command("list")
def list_(
    endpoint: str = typer.Argument(None, help="Only this endpoint's rollouts."),
    state: str = typer.Option(
        None, help="pending, running, paused, promoted, rolled_back or aborted."
    ),
    limit: int = typer.Option(100, help="At most this many, newest first."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List rollouts, newest first."""
    with client() as c:
        found = c.list_rollouts(endpoint, state=state, limit=limit)
    if as_json:
        output.emit_json(found)
    else:
        output.table([_shown(r) for r in found], LIST_COLUMNS, "rollouts")


@app.command("pause")
def pause(endpoint: str, reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Hold ENDPOINT's rollout at its current step."""
    with client() as c:
        data = c.rollout_action(endpoint, "pause", reason=reason)
    _acted(data, as_json, "paused")


@app.command("resume")
def resume(endpoint: str, reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Go on with ENDPOINT's paused rollout."""
    with client() as c:
        data = c.rollout_action(endpoint, "resume", reason=reason)
    _acted(data, as_json, "resumed")


@app.command("promote")
def promote(endpoint: str, reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Make the canary of ENDPOINT's rollout the primary now, skipping the other steps."""
    with client() as c:
        data = c.rollout_action(endpoint, "promote", reason=reason)
    _acted(data, as_json, "promoted")


@app.command("abort")
def abort(endpoint: str, reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Stop ENDPOINT's rollout; all traffic goes back to the primary."""
    with client() as c:
        data = c.rollout_action(endpoint, "abort", reason=reason)
    _acted(data, as_json, "aborted")


@app.command("analysis")
def analysis(endpoint: str, as_json: bool = JSON_OPTION) -> None:
    """Judge ENDPOINT's canary against its primary now, check by check (not recorded)."""
    with client() as c:
        data = c.rollout_analysis(endpoint)
    if as_json:
        output.emit_json(data)
        return
    step = data.get("step")
    output.console.print(
        f"rollout {data.get('rollout')}, step {step + 1 if isinstance(step, int) else '-'}: "
        f"{data.get('window_start')} to {data.get('window_end')}",
        highlight=False,
    )
    print_checks(data, "analysis")


# -- template --------------------------------------------------------------------------------
@template_app.command("list")
def template_list(as_json: bool = JSON_OPTION) -> None:
    """List analysis templates (default is built in and read-only)."""
    with client() as c:
        found = c.list_templates()
    output.emit_json(found) if as_json else output.table(found, TEMPLATE_COLUMNS, "templates")


def _show_template(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(data)
        return
    output.record(data, TEMPLATE_COLUMNS)
    rows = [{"check": name, **spec} for name, spec in (data.get("checks") or {}).items()]
    output.table(rows, TEMPLATE_CHECK_COLUMNS, "checks")


@template_app.command("show")
def template_show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show template NAME and its checks."""
    with client() as c:
        data = c.get_template(name)
    _show_template(data, as_json)


@template_app.command("put")
def template_put(
    name: str,
    file: Path = typer.Argument(..., help="YAML or JSON: only what differs from default."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create or replace template NAME from FILE; what it leaves out is default's."""
    with client() as c:
        data = c.put_template(name, read_spec(file))
    _show_template(data, as_json)


@template_app.command("delete")
def template_delete(name: str, as_json: bool = JSON_OPTION) -> None:
    """Delete template NAME (rollouts under way keep their copy)."""
    with client() as c:
        data = c.delete_template(name)
    output.emit_json(data) if as_json else output.console.print(f"deleted template {name}")


def read_spec(path: Path) -> dict[str, Any]:
    """A template spec from a YAML (or JSON: YAML is a superset) file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f", line {where.line + 1}" if where is not None else ""
        raise InvalidRequest(f"{path}: not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{path}: expected an object (checks, inconclusive_wait...)")
    return data
