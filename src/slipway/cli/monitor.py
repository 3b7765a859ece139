"""``slipway monitor|alert|channel|feedback ...``: an endpoint's health and who hears of it.

    slipway monitor report churn --window 7d --html churn.html
    slipway monitor create churn --name age-drift --metric feature_drift --feature age \\
        --threshold 0.2
    slipway channel add oncall --kind slack --secret-ref env:SLACK_URL --endpoint churn
    slipway feedback send churn labels.csv          # prediction_id,label
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from slipway.cli import output
from slipway.cli.access import parse_duration
from slipway.cli.common import JSON_OPTION, client
from slipway.errors import InvalidRequest, ValidationFailed
from slipway.monitoring import report as reports

if TYPE_CHECKING:
    from slipway.client import Client

app = typer.Typer(
    help="An endpoint's health: reports and the monitors that judge it.", no_args_is_help=True
)
alert_app = typer.Typer(help="Alerts raised by monitors.", no_args_is_help=True)
channel_app = typer.Typer(help="Where alerts are sent.", no_args_is_help=True)
feedback_app = typer.Typer(help="Ground truth for predictions.", no_args_is_help=True)

MONITOR_COLUMNS = tuple(
    "name metric feature window op threshold min_samples severity enabled builtin".split()
)
ALERT_COLUMNS = tuple(
    "id endpoint monitor subject severity state value threshold started_at resolved_at".split()
)
DELIVERY_COLUMNS = tuple(
    "channel event status attempts response_status last_error delivered_at".split()
)
CHANNEL_COLUMNS = ("name", "kind", "url", "has_secret", "endpoints", "min_severity", "enabled")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60))
_SHOWN_IDS = 10


def parse_window(text: str, option: str = "--window") -> int:
    """ "90s", "15m", "24h", "7d" to whole seconds; anything else names the option."""
    return round(parse_duration(text, option))


def span(seconds: Any) -> str:
    """3600 -> "1h": the inverse of :func:`parse_window` for tables."""
    if not isinstance(seconds, int):
        return "-" if seconds is None else str(seconds)
    for unit, size in _UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- monitor -------------------------------------------------------------------------------
@app.command("report")
def report(
    endpoint: str,
    window: str = typer.Option("24h", help="How far back: 90s, 15m, 24h, 7d."),
    version: int = typer.Option(None, help="This version instead of the primary one."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Traffic, latency, drift, label quality, monitors and firing alerts of ENDPOINT."""
    seconds = parse_window(window)
    with client() as c:
        summary = c.monitoring(endpoint, window=seconds, version=version)
    if html is not None:
        try:
            html.write_text(reports.render_html(summary), encoding="utf-8")
        except OSError as exc:
            raise InvalidRequest(f"--html: cannot write {html}: {exc.strerror}") from None
        if not as_json:
            print(html)  # plain: scripts open the path
            return
    if as_json:
        output.emit_json(summary)
    else:
        reports.render_terminal(summary, output.console)


def _monitor_fields(**given: Any) -> dict[str, Any]:
    """Only the options given, with --window as seconds."""
    fields = {k: v for k, v in given.items() if v is not None}
    if "window" in fields:
        fields["window_s"] = parse_window(fields.pop("window"))
    return fields


def _show_monitor(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(data)
    else:
        output.record({**data, "window": span(data.get("window_s"))}, MONITOR_COLUMNS)


@app.command("list")
def monitor_list(endpoint: str, as_json: bool = JSON_OPTION) -> None:
    """List the monitors of ENDPOINT."""
    with client() as c:
        found = c.list_monitors(endpoint)
    if as_json:
        output.emit_json(found)
        return
    rows = [{**m, "window": span(m.get("window_s"))} for m in found]
    output.table(rows, MONITOR_COLUMNS, f"monitors of {endpoint}")


@app.command("create")
def monitor_create(
    endpoint: str,
    name: str = typer.Option(..., help="A slug, unique on the endpoint."),
    metric: str = typer.Option(..., help="feature_drift, error_rate, latency_p99_ms, f1, ..."),
    feature: str = typer.Option(None, help="Only this feature (drift metrics)."),
    window: str = typer.Option("1h", help="Judged over this much recent data: 15m, 1h, 1d."),
    op: str = typer.Option(">", help="'>' or '<': a breach is value OP threshold."),
    threshold: float = typer.Option(..., help="The limit."),
    min_samples: int = typer.Option(None, help="Judge only with at least this many samples."),
    severity: str = typer.Option(None, help="info, warning or critical."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a monitor to ENDPOINT."""
    fields = _monitor_fields(
        name=name,
        metric=metric,
        feature=feature,
        window=window,
        op=op,
        threshold=threshold,
        min_samples=min_samples,
        severity=severity,
    )
    with client() as c:
        data = c.create_monitor(endpoint, **fields)
    _show_monitor(data, as_json)


@app.command("update")
def monitor_update(
    endpoint: str,
    name: str,
    rename: str = typer.Option(None, "--name", help="A new name."),
    metric: str = typer.Option(None, help="Another metric."),
    feature: str = typer.Option(None, help="Only this feature (drift metrics)."),
    window: str = typer.Option(None, help="Judged over this much recent data: 15m, 1h, 1d."),
    op: str = typer.Option(None, help="'>' or '<'."),
    threshold: float = typer.Option(None, help="The limit."),
    min_samples: int = typer.Option(None, help="Judge only with at least this many samples."),
    severity: str = typer.Option(None, help="info, warning or critical."),
    enabled: bool = typer.Option(None, "--enable/--disable", help="Switch it on or off."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change monitor NAME of ENDPOINT; only the options given change.

    An edited built-in monitor is yours from then on: the next deploy leaves it alone."""
    fields = _monitor_fields(
        name=rename,
        metric=metric,
        feature=feature,
        window=window,
        op=op,
        threshold=threshold,
        min_samples=min_samples,
        severity=severity,
        enabled=enabled,
    )
    if not fields:
        raise ValidationFailed.field("options", "give at least one option to change")
    with client() as c:
        data = c.update_monitor(endpoint, name, **fields)
    _show_monitor(data, as_json)


@app.command("delete")
def monitor_delete(endpoint: str, name: str) -> None:
    """Delete monitor NAME of ENDPOINT (a built-in one returns with the next deploy)."""
    with client() as c:
        c.delete_monitor(endpoint, name)
    output.console.print(f"deleted monitor {name}")


@app.command("check")
def monitor_check(endpoint: str, as_json: bool = JSON_OPTION) -> None:
    """Judge ENDPOINT's monitors now; print the verdicts and the firing alerts.

    Exits 0 even when a monitor breaches: the alert is the outcome, not a failure."""
    with client() as c:
        data = c.evaluate_monitors(endpoint)
        firing = c.list_alerts(endpoint=endpoint, state="firing")
    if as_json:
        output.emit_json({**data, "firing": firing})
        return
    reports.print_section(reports.monitors_section(data["evaluations"]), output.console)
    for change in data["changes"]:
        output.console.print(
            f"{change['action']} alert {change['alert_id']} ({change['severity']}), "
            f"sent to {', '.join(change['deliveries']) or 'nobody'}",
            highlight=False,
        )
    reports.print_section(reports.alerts_section(firing), output.console)


# -- alert ---------------------------------------------------------------------------------
@alert_app.command("list")
def alert_list(
    endpoint: str = typer.Option(None, help="Only this endpoint's alerts."),
    state: str = typer.Option(None, help="firing or resolved."),
    limit: int = typer.Option(100, help="At most this many, newest first."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List alerts, newest first."""
    with client() as c:
        found = c.list_alerts(endpoint=endpoint, state=state, limit=limit)
    output.emit_json(found) if as_json else output.table(found, ALERT_COLUMNS, "alerts")


@alert_app.command("show")
def alert_show(alert_id: str, as_json: bool = JSON_OPTION) -> None:
    """Show one alert, its evidence and its deliveries to channels."""
    with client() as c:
        data = c.get_alert(alert_id)
    if as_json:
        output.emit_json(data)
        return
    output.record(data, (*ALERT_COLUMNS, "metric", "model", "version", "evidence"))
    output.table(data.get("deliveries") or [], DELIVERY_COLUMNS, "deliveries")


@alert_app.command("resolve")
def alert_resolve(
    alert_id: str,
    reason: str = typer.Option(..., help="Why it needs no more attention (audited)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Resolve a firing alert by hand; its channels are told."""
    with client() as c:
        data = c.resolve_alert(alert_id, reason=reason)
    output.emit_json(data) if as_json else output.console.print(f"resolved alert {alert_id}")


# -- channel -------------------------------------------------------------------------------
@channel_app.command("add")
def channel_add(
    name: str,
    kind: str = typer.Option(..., help="webhook, slack or log."),
    url: str = typer.Option("", help="Where to POST (webhook, slack)."),
    secret_ref: str = typer.Option(
        "", help="env:NAME or file:PATH holding the URL or signing secret; never the secret."
    ),
    endpoint: list[str] = typer.Option([], help="Only alerts of this endpoint; repeat."),
    min_severity: str = typer.Option("info", help="info, warning or critical."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a notification channel."""
    with client() as c:
        data = c.create_channel(
            name,
            kind,
            url=url,
            secret_ref=secret_ref,
            endpoints=endpoint,
            min_severity=min_severity,
        )
    output.emit_json(data) if as_json else output.record(data, CHANNEL_COLUMNS)


@channel_app.command("list")
def channel_list(as_json: bool = JSON_OPTION) -> None:
    """List notification channels."""
    with client() as c:
        found = c.list_channels()
    output.emit_json(found) if as_json else output.table(found, CHANNEL_COLUMNS, "channels")


@channel_app.command("remove")
def channel_remove(name: str) -> None:
    """Remove a notification channel."""
    with client() as c:
        c.delete_channel(name)
    output.console.print(f"removed channel {name}")


@channel_app.command("test")
def channel_test(name: str, as_json: bool = JSON_OPTION) -> None:
    """Send a sample alert through channel NAME; exits 1 if it did not arrive."""
    with client() as c:
        data = c.test_channel(name)
    if as_json:
        output.emit_json(data)
    elif data["ok"]:
        status = f" (HTTP {data['status']})" if data.get("status") else ""
        output.console.print(f"channel {name}: delivered{status}", highlight=False)
    else:
        output.err_console.print(
            f"channel {name}: failed: {data.get('error') or data.get('status')}", highlight=False
        )
    if not data["ok"]:
        raise typer.Exit(1)


# -- feedback ------------------------------------------------------------------------------
@feedback_app.command("send")
def feedback_send(
    endpoint: str,
    file: str = typer.Argument(..., help="CSV or JSON lines with prediction_id,label; - is stdin."),
    numeric: bool = typer.Option(
        False,
        help='Send labels that look like numbers as numbers (a model trained on 0/1, not "0"/"1").',
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send ground truth for predictions of ENDPOINT, by the ids predict returned.

    Exits 1 if any id was unknown or invalid, so a pipeline notices labels that went nowhere."""
    # A label counts only if it equals the class the model answers with, and "1" != 1:
    # a model trained on y = [0, 1] predicts the number 1, one trained on ["0", "1"] the
    # string "1" (predict returns the model's own classes). A CSV cannot say which, so
    # its labels stay strings unless --numeric; JSON lines keep their JSON types.
    items = read_labels(file, numeric=numeric)
    with client() as c:
        data = _send(c, endpoint, items)
    if as_json:
        output.emit_json(data)
    else:
        counts = {k: data[k] for k in ("accepted", "updated")}
        if data["overridden"]:  # labels not stored: a reviewer's override stands
            counts["overridden"] = len(data["overridden"])
        counts |= {k: len(data[k]) for k in ("unknown", "invalid")}
        output.console.print(", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)
        if data["unknown"]:
            shown = ", ".join(data["unknown"][:_SHOWN_IDS])
            more = len(data["unknown"]) - _SHOWN_IDS
            output.err_console.print(
                f"unknown ids: {shown}" + (f" (and {more} more)" if more > 0 else ""),
                highlight=False,
            )
        for bad in data["invalid"][:_SHOWN_IDS]:
            output.err_console.print(
                f"invalid item {bad['index'] + 1}: {bad['field']}: {bad['reason']}",
                highlight=False,
            )
    if data["unknown"] or data["invalid"]:
        raise typer.Exit(1)


def _send(c: Client, endpoint: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Send the items the server can judge one by one; the rest are invalid here. (The
    server refuses a whole request for one missing or malformed label.) Every invalid
    item is reported with its position in the file and the field: label or prediction_id."""
    problems = {i: p for i, item in enumerate(items) if (p := _problem(item)) is not None}
    sent = [i for i in range(len(items)) if i not in problems]
    data: dict[str, Any] = {
        "accepted": 0,
        "updated": 0,
        "overridden": [],
        "unknown": [],
        "invalid": [],
    }
    if sent:
        data = c.send_feedback(endpoint, [items[i] for i in sent])
    invalid = [{"index": i, "field": f, "reason": r} for i, (f, r) in problems.items()]
    for bad in data["invalid"]:  # indexes of what was sent, fields like items[3].label
        field = str(bad.get("field", "")).rsplit(".", 1)[-1]
        invalid.append({"index": sent[bad["index"]], "field": field, "reason": bad.get("reason")})
    data["invalid"] = sorted(invalid, key=lambda bad: int(bad["index"]))
    return {**data, "received": len(items)}


def _problem(item: dict[str, Any]) -> tuple[str, str] | None:
    pid, label = item.get("prediction_id"), item.get("label")
    if not isinstance(pid, str) or not pid or len(pid) > 64:
        return "prediction_id", "required: an id as predict returned it (<record>-<row>)"
    scalar = isinstance(label, str | int | float | bool) and label != ""
    if not scalar or (isinstance(label, float) and not math.isfinite(label)):
        return "label", "required: a class label or a number"
    return None


def read_labels(path: str, *, numeric: bool = False) -> list[dict[str, Any]]:
    """``[{prediction_id, label}]`` from CSV (header row) or JSON lines (or a JSON list);
    an empty CSV cell is a missing value."""
    if path != "-" and not Path(path).is_file():
        raise InvalidRequest(f"{path}: no such file")
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        records = data if isinstance(data, list) else []
    elif stripped.startswith("{"):
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InvalidRequest(
                        f"{path}: line {number}: not valid JSON ({exc.msg})"
                    ) from None
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = {"prediction_id", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValidationFailed.field(path, "needs the columns prediction_id and label")
        records = [{k: v if v != "" else None for k, v in row.items()} for row in reader]
    if not records or not all(isinstance(r, dict) for r in records):
        raise InvalidRequest(f"{path}: expected objects with prediction_id and label")
    return [
        {"prediction_id": r.get("prediction_id"), "label": _label(r.get("label"), numeric)}
        for r in records
    ]


def _label(value: Any, numeric: bool) -> Any:
    if not (numeric and isinstance(value, str)):
        return value
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value
    return value
