"""An endpoint's health summary (see summary.py) rendered for people.

Both renderers read the dict ``GET /api/v1/endpoints/{e}/monitoring`` returns, through
the same :func:`sections`, so the terminal and the HTML file always agree:

- :func:`render_terminal`: rich tables (header, traffic, drift, label quality,
  monitors, firing alerts);
- :func:`render_html`: one self-contained file (inline CSS and SVG, no scripts, nothing
  fetched), adding charts: drift scores, each distribution against its reference,
  traffic and latency over time, and the reliability diagram.

A number may be None wherever there was no data; it shows as "—".
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slipway.monitoring._svg import (
    ACCENT,
    ALARM,
    CURRENT,
    REFERENCE,
    Series,
    bar_chart,
    histogram,
    line_chart,
)

__all__ = [
    "Section",
    "alerts_section",
    "monitors_section",
    "print_section",
    "render_html",
    "render_terminal",
    "sections",
]

DASH = "—"
# Rich styles and CSS classes share these words.
STYLES = {
    "breach": "red",
    "drift": "red",
    "firing": "red",
    "critical": "bold red",
    "warning": "yellow",
    "ok": "green",
    "insufficient": "dim",
    "info": "dim",
}
_QUALITY = "n accuracy precision recall f1 f1_macro roc_auc log_loss brier ece mae rmse r2".split()


@dataclass(frozen=True)
class Section:
    """One table: what both renderers show. ``status[i]`` colours row i's status cell."""

    title: str
    columns: tuple[str, ...]
    rows: list[list[str]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    status_column: int | None = None
    empty: str = "no data"


# -- numbers as text ------------------------------------------------------------------------
def fmt(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pct(value: Any) -> str:
    return DASH if value is None else f"{value:.2%}"


def ms(value: Any) -> str:
    return DASH if value is None else f"{value:.1f} ms"


def duration(seconds: Any) -> str:
    """12.5 s, 4.2 min, 3 h, 7 d."""
    if seconds is None:
        return DASH
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _get(data: Any, *path: str) -> Any:
    """``data[a][b]`` or None when any level is missing or None."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


# -- sections: the tables ----------------------------------------------------------------
def header(summary: Mapping[str, Any]) -> tuple[str, str]:
    version = summary.get("version")
    model = f"{fmt(summary.get('model'))} v{fmt(version)}"
    start, end = _get(summary, "window", "start"), _get(summary, "window", "end")
    span = duration(_get(summary, "window", "seconds"))
    return fmt(summary.get("endpoint")), f"{model} · {when(start)} → {when(end)} ({span})"


def when(iso: Any) -> str:
    """An ISO timestamp to the second, in UTC like every time slipway shows."""
    try:
        at = datetime.fromisoformat(str(iso))
    except ValueError:
        return fmt(iso)
    return (at.astimezone(UTC) if at.tzinfo else at).strftime("%Y-%m-%d %H:%M:%S UTC")


def sections(summary: Mapping[str, Any]) -> list[Section]:
    return [
        _traffic(summary.get("traffic") or {}),
        _drift(summary.get("drift")),
        _quality(summary.get("quality")),
        monitors_section(summary.get("monitors") or []),
        alerts_section(summary.get("alerts") or []),
    ]


def _traffic(t: Mapping[str, Any]) -> Section:
    counted = (
        ("errors", "errors", "error_rate"),
        ("contract violations", "violations", "violation_rate"),
        ("NaN outputs", "nan_outputs", "nan_rate"),
    )
    rows = [["requests", fmt(t.get("requests"))], ["rows", fmt(t.get("rows"))]]
    rows += [[label, f"{fmt(t.get(n))} ({pct(t.get(rate))})"] for label, n, rate in counted]
    rows += [[f"latency {q}", ms(_get(t, "latency_ms", q))] for q in ("p50", "p95", "p99")]
    return Section("Traffic & latency", ("metric", "value"), rows)


def _drift(drift: Mapping[str, Any] | None) -> Section:
    columns = tuple(
        "column role statistic score threshold verdict severity n_reference n_current psi".split()
    )
    if drift is None:
        empty = "no reference profile (register the version with its training data)"
        return Section("Drift", columns, empty=empty)
    found = drift.get("columns") or []
    rows = [
        [
            fmt(c.get("column")),
            fmt(c.get("role")),
            fmt(c.get("statistic")),
            fmt(c.get("score")),
            fmt(c.get("threshold")),
            fmt(c.get("verdict")),
            fmt(c.get("severity")),
            fmt(c.get("n_reference")),
            fmt(c.get("n_current")),
            fmt(c.get("psi")),
        ]
        for c in found
    ]
    status = [str(c.get("verdict")) for c in found]
    return Section("Drift", columns, rows, status, 5, "no current data to compare")


def _quality(quality: Mapping[str, Any] | None) -> Section:
    if not quality:
        return Section("Label quality", ("metric", "value"), empty="no labels in this window")
    rows = [[key, fmt(quality[key])] for key in _QUALITY if key in quality]
    delay = quality.get("label_delay") or {}
    rows += [[f"label delay {q}", duration(delay.get(f"{q}_s"))] for q in ("p50", "p95", "max")]
    return Section("Label quality", ("metric", "value"), rows)


def monitors_section(monitors: Sequence[Mapping[str, Any]]) -> Section:
    columns = ("monitor", "metric", "subject", "status", "value", "rule", "samples", "severity")
    rows = [
        [
            fmt(m.get("monitor")),
            fmt(m.get("metric")),
            fmt(m.get("subject") or None),
            fmt(m.get("status")),
            fmt(m.get("value")),
            f"{fmt(m.get('op'))} {fmt(m.get('threshold'))}",
            fmt(m.get("samples")),
            fmt(m.get("severity")),
        ]
        for m in monitors
    ]
    status = [str(m.get("status")) for m in monitors]
    return Section("Monitors", columns, rows, status, 3, "no monitors")


def alerts_section(alerts: Sequence[Mapping[str, Any]]) -> Section:
    columns = tuple("id severity monitor metric subject value threshold started_at".split())
    rows = [
        [fmt(a.get(c)) for c in columns[:4]]
        + [fmt(a.get("subject") or None), fmt(a.get("value")), fmt(a.get("threshold"))]
        + [when(a.get("started_at"))]
        for a in alerts
    ]
    status = [str(a.get("severity")) for a in alerts]
    return Section("Firing alerts", columns, rows, status, 1, "no firing alerts")


# -- terminal ------------------------------------------------------------------------------
def render_terminal(summary: Mapping[str, Any], console: Console) -> None:
    """Print the summary as rich tables."""
    title, subtitle = header(summary)
    console.print(f"[bold]{escape(title)}[/bold]  {escape(subtitle)}", highlight=False)
    for section in sections(summary):
        print_section(section, console)


def print_section(section: Section, console: Console) -> None:
    if not section.rows:
        console.print(f"[bold]{section.title}[/bold]: [dim]{escape(section.empty)}[/dim]")
        return
    table = Table(title=section.title, title_justify="left", title_style="bold")
    for column in section.columns:
        table.add_column(column)
    for i, row in enumerate(section.rows):
        cells = [escape(cell) for cell in row]
        col = section.status_column
        style = STYLES.get(section.status[i]) if i < len(section.status) else None
        if col is not None and style:
            cells[col] = f"[{style}]{cells[col]}[/{style}]"
        table.add_row(*cells)
    console.print(table)


# -- HTML ----------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#1d2330;background:#fff}h1{margin:0;font-size:22px}h2{margin:28px 0 8px;font-size:17px}
.sub{color:#5b6474;margin:2px 0 12px}table{border-collapse:collapse;margin:6px 0 10px}
th,td{padding:3px 10px;border-bottom:1px solid #e4e7ec;text-align:left;font-variant-numeric:
tabular-nums}th{background:#f5f6f8}.empty{color:#8a93a3;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;border:1px solid #e4e7ec;
border-radius:6px;padding:4px}svg text{font-size:11px;fill:#3a4150}svg .t{font-size:13px;
font-weight:600}.grid{stroke:#eceef2}.axis{stroke:#9aa3b2}
.breach,.drift,.firing,.critical{color:#c62828;font-weight:600}.warning{color:#b26a00}
.ok{color:#2e7d32}.insufficient,.info{color:#8a93a3}
"""


def render_html(summary: Mapping[str, Any]) -> str:
    """One self-contained HTML page: tables and inline SVG charts, nothing external."""
    title, subtitle = header(summary)
    by_title = {s.title: s for s in sections(summary)}
    found: Mapping[str, Any] = summary.get("distributions") or {}
    distributions = {k: v for k, v in found.items() if isinstance(v, Mapping)}
    outputs = {k: v for k, v in distributions.items() if k in ("[prediction]", "[score]")}
    features = {k: v for k, v in distributions.items() if k not in outputs}
    body = [
        f"<header><h1>{_e(title)}</h1><p class=sub>{_e(subtitle)}</p></header>",
        _section(by_title["Traffic & latency"], _series_charts(summary.get("series") or [])),
        _section(by_title["Drift"], [_drift_chart(summary.get("drift"))]),
        _figures("Feature distributions", features, "no feature data"),
        _figures("Predictions", outputs, "no predictions"),
        _section(by_title["Label quality"], [_reliability_chart(summary.get("quality"))]),
        _section(by_title["Monitors"]),
        _section(by_title["Firing alerts"]),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)} · slipway monitoring</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _e(text: Any) -> str:
    return html.escape(str(text))


def _table(section: Section) -> str:
    if not section.rows:
        return f"<p class=empty>{_e(section.empty)}</p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in section.columns)
    rows = []
    for i, row in enumerate(section.rows):
        cells = []
        for j, cell in enumerate(row):
            css = section.status[i] if j == section.status_column else ""
            cls = f' class="{_e(css)}"' if css in STYLES else ""
            cells.append(f"<td{cls}>{_e(cell)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _section(section: Section, charts: Sequence[str] = ()) -> str:
    figures = "".join(f"<figure>{c}</figure>" for c in charts if c)
    block = f"<div class=charts>{figures}</div>" if figures else ""
    return f"<section><h2>{_e(section.title)}</h2>{block}{_table(section)}</section>"


def _figures(title: str, charts: Mapping[str, Any], empty: str) -> str:
    figures = "".join(f"<figure>{_distribution_chart(n, d)}</figure>" for n, d in charts.items())
    inner = f"<div class=charts>{figures}</div>" if figures else f"<p class=empty>{_e(empty)}</p>"
    return f"<section><h2>{_e(title)}</h2>{inner}</section>"


def _drift_chart(drift: Mapping[str, Any] | None) -> str:
    found = [c for c in (drift or {}).get("columns") or [] if c.get("score") is not None]
    if not found:
        return ""
    scores = Series(
        "score",
        ACCENT,
        [c["score"] for c in found],
        [ALARM if c.get("verdict") == "drift" else ACCENT for c in found],
    )
    labels = [str(c.get("column")) for c in found]
    return bar_chart(
        "Drift score by column",
        labels,
        [scores],
        markers=[c.get("threshold") for c in found],
        y_label="score",
        legend=[Series("drift", ALARM, ()), Series("no drift", ACCENT, ())],
    )


def _distribution_chart(name: str, dist: Mapping[str, Any]) -> str:
    series = [
        Series(key, color, dist[key])
        for key, color in (("reference", REFERENCE), ("current", CURRENT))
        if dist.get(key) is not None
    ]
    if not series:
        return f"<p class=empty>{_e(name)}: no data</p>"
    if dist.get("kind") == "numeric":
        edges = [float(x) for x in dist.get("edges") or []]
        bins = len(series[0].values)
        if len(edges) >= 2 and all(len(s.values) == len(edges) - 1 for s in series):
            return histogram(name, edges, series)
        labels = _bin_labels(edges, bins)  # a (nearly) constant column: two bins
    else:
        labels = [str(item) for item in dist.get("items") or []]
    return bar_chart(name, labels, series, y_label="share")


def _bin_labels(edges: Sequence[float], bins: int) -> list[str]:
    """Labels of the bins summary.py makes when the edges are too few to span a range:
    ``pmf`` at the inner edges (or the single edge) gives "≤ a", "a–b", ..., "> z"."""
    split = list(edges[1:-1]) if len(edges) > 2 else list(edges[:1])
    labels = [f"≤ {split[0]:.4g}"] if split else []
    labels += [f"{a:.4g}–{b:.4g}" for a, b in zip(split, split[1:], strict=False)]
    labels += [f"> {split[-1]:.4g}"] if split else []
    return labels if len(labels) == bins else [f"bin {i + 1}" for i in range(bins)]


def _series_charts(points: Sequence[Mapping[str, Any]]) -> list[str]:
    series = [s for s in points if isinstance(s.get("start"), str)]
    if not series:
        return []
    times = [datetime.fromisoformat(s["start"]) for s in series]
    xs = [t.timestamp() for t in times]
    tz = times[0].tzinfo
    pattern = "%H:%M" if xs[-1] - xs[0] <= 86400 else "%m-%d %H:%M"

    def tick(x: float) -> str:
        return datetime.fromtimestamp(x, tz).strftime(pattern)

    ticks = [xs[0] + i * (xs[-1] - xs[0]) / 3 for i in range(4)] if len(xs) > 1 else xs
    tips = [t.isoformat() for t in times]
    latency = [
        Series("p50", ACCENT, [s.get("p50_ms") for s in series]),
        Series("p99", CURRENT, [s.get("p99_ms") for s in series]),
    ]
    requests = [Series("requests", ACCENT, [s.get("requests") for s in series])]
    common: dict[str, Any] = {"xs": xs, "x_format": tick, "x_ticks": ticks, "tips": tips}
    return [
        line_chart("Latency over time", latency, y_label="ms", **common),
        line_chart("Requests over time", requests, y_label="requests", **common),
    ]


def _reliability_chart(quality: Mapping[str, Any] | None) -> str:
    bins = [
        b
        for b in (quality or {}).get("reliability") or []
        if b.get("count") and b.get("confidence") is not None and b.get("accuracy") is not None
    ]
    if not bins:
        return ""
    return line_chart(
        "Reliability: confidence vs accuracy",
        [Series("accuracy", CURRENT, [b["accuracy"] for b in bins])],
        xs=[b["confidence"] for b in bins],
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        x_ticks=[0.0, 0.25, 0.5, 0.75, 1.0],
        y_label="accuracy",
        x_label="confidence",
        diagonal=True,
        tips=[f"{b['count']} predictions, confidence {b['confidence']:.3f}" for b in bins],
    )
