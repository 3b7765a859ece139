"""The model card of a version, generated from slipway's records and never typed by hand.

:meth:`CardService.card` gathers, as plain data: the model's inventory entry (owners,
risk tier, intended use, limitations), the version (artifact, libraries, status), its
lineage (data fingerprints, code, parameters), the current evaluation record exactly as
stored, the data contract, every approval with whether it still counts, where the
version serves (primary, canary, shadow, fallback) with each endpoint's monitoring
status, and the model's ML Test Score. There is no way to edit a card: change the
records and the next card says so.

Two renderers read that dict through the same :func:`sections`, so they always agree:
:func:`to_markdown` and :func:`to_html` (one standalone page: inline CSS, no scripts,
nothing fetched, every value escaped).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slipway.governance.approvals import ApprovalService
from slipway.governance.evaluations import EvaluationService
from slipway.governance.testscore import TestScoreService
from slipway.ids import utcnow
from slipway.monitoring.summary import Summarizer
from slipway.registry.models import ModelService
from slipway.registry.versions import Version, VersionService
from slipway.serving.endpoints import Endpoint, EndpointService

DASH = "—"


class CardService:
    def __init__(
        self,
        models: ModelService,
        versions: VersionService,
        endpoints: EndpointService,
        evaluations: EvaluationService,
        approvals: ApprovalService,
        summaries: Summarizer,
        test_scores: TestScoreService,
    ) -> None:
        self.models = models
        self.versions = versions
        self.endpoints = endpoints
        self.evaluations = evaluations
        self.approvals = approvals
        self.summaries = summaries
        self.test_scores = test_scores

    def card(
        self,
        model: str,
        number: int,
        *,
        shows_monitoring: Callable[[str], bool] = lambda endpoint: True,
    ) -> dict[str, Any]:
        """The card of version ``number`` of ``model``, as data (see the module doc).
        An endpoint's live monitoring is shown only where ``shows_monitoring(endpoint)``
        (the reader may read that endpoint's monitoring); elsewhere it is None."""
        entry = self.models.get(model)
        version = self.versions.get(model, number)
        evaluation = self.evaluations.current(version)
        binding = self.approvals.binding_of(version)
        all_endpoints = self.endpoints.list()
        return {
            "model": {
                "name": entry.name,
                "description": entry.description,
                "owner": entry.owner,
                "oncall": entry.oncall,
                "runbook_url": entry.runbook_url,
                "risk_tier": entry.risk_tier,
                "intended_use": entry.intended_use,
                "limitations": entry.limitations,
                "tags": list(entry.tags),
                "status": entry.status,
                "legal_hold": entry.legal_hold_at is not None,
            },
            "version": {
                "number": version.number,
                "flavor": version.flavor,
                "description": version.description,
                "artifact_sha256": version.artifact_sha256,
                "artifact_size": version.artifact_size,
                "library_versions": dict(version.library_versions),
                "status": version.status,
                "status_reason": version.status_reason,
                "registered_by": version.created_by,
                "registered_at": _iso(version.created_at),
            },
            "lineage": {
                key: version.lineage.get(key)
                for key in (
                    "training_data",
                    "evaluation_data",
                    "code",
                    "parameters",
                    "parent_version",
                )
            },
            "evaluation": evaluation.to_dict() if evaluation is not None else None,
            "contract": {"stored": version.contract is not None, **version.data_contract.to_dict()},
            "approvals": [a.to_dict(binding) for a in self.approvals.of_version(version)],
            "deployed": [
                self._deployment(ep, version, role, weight, shows_monitoring(ep.name))
                for ep in all_endpoints
                if ep.model == model
                for number, role, weight in ep.arms()
                if number == version.number
            ],
            "test_score": self.test_scores.score(model, all_endpoints=all_endpoints),
            "generated_at": utcnow().isoformat(),
        }

    def _deployment(
        self, ep: Endpoint, version: Version, role: str, weight: float, monitoring: bool
    ) -> dict[str, Any]:
        """Where the version serves, with the endpoint's monitoring status as the
        monitoring summary reports it (its monitors judge the primary version), when
        ``monitoring`` (else None)."""
        where = {"endpoint": ep.name, "role": role, "weight": weight, "stopped": ep.stopped}
        if not monitoring:
            return {**where, "monitoring": None}
        summary = self.summaries.summarize(ep.name, version=version.number)
        traffic = summary["traffic"]
        return {
            **where,
            "monitoring": {
                "window_s": summary["window"]["seconds"],
                "requests": traffic["requests"],
                "error_rate": traffic["error_rate"],
                "latency_p99_ms": traffic["latency_ms"]["p99"],
                "monitors_judge_version": ep.version,
                "monitors": summary["monitors"],
                "firing_alerts": [a for a in summary["alerts"] if a["version"] == version.number],
            },
        }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- what both renderers show ---------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: list[list[str]]
    title: str = ""
    empty: str = "none"


@dataclass(frozen=True)
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def text(value: Any) -> str:
    """A value as the card shows it. Numbers keep every digit stored (a card must
    agree with its evaluation record), lists are joined, missing is a dash."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(text(v) for v in value) if value else DASH
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def title(card: Mapping[str, Any]) -> str:
    return f"Model card: {card['model']['name']} v{card['version']['number']}"


def sections(card: Mapping[str, Any]) -> list[Section]:
    return [
        _model(card["model"]),
        Section("Intended use", [card["model"]["intended_use"] or "Not stated."]),
        Section("Limitations", [card["model"]["limitations"] or "Not stated."]),
        _version(card["version"]),
        _lineage(card["lineage"]),
        _evaluation(card["evaluation"]),
        _contract(card["contract"]),
        _approvals(card["approvals"]),
        _deployed(card["deployed"]),
        _monitoring(card["deployed"]),
        _test_score(card["test_score"]),
    ]


def _model(m: Mapping[str, Any]) -> Section:
    keys = ("owner", "oncall", "runbook_url", "risk_tier", "status", "tags", "legal_hold")
    labels = {"oncall": "on-call", "runbook_url": "runbook", "risk_tier": "risk tier"}
    return Section(
        "Model",
        [m["description"]] if m["description"] else [],
        [(labels.get(k, k.replace("_", " ")), text(m[k])) for k in keys],
    )


def _version(v: Mapping[str, Any]) -> Section:
    libraries = Table(
        ("library", "version"),
        [[name, text(found)] for name, found in sorted(v["library_versions"].items())],
        "Library versions",
    )
    return Section(
        "Version",
        [v["description"]] if v["description"] else [],
        [
            ("number", text(v["number"])),
            ("flavor", text(v["flavor"])),
            (
                "status",
                text(v["status"]) + (f" ({v['status_reason']})" if v["status_reason"] else ""),
            ),
            ("artifact sha256", text(v["artifact_sha256"])),
            ("artifact size", f"{v['artifact_size']} bytes"),
            ("registered by", text(v["registered_by"])),
            ("registered at", text(v["registered_at"])),
        ],
        [libraries],
    )


def _fingerprint(data: Any) -> str:
    if not isinstance(data, Mapping):
        return DASH
    columns = data.get("columns") or []
    return f"sha256 {data.get('sha256')}, {data.get('rows')} rows, columns: {text(columns)}"


def _lineage(lineage: Mapping[str, Any]) -> Section:
    code = lineage.get("code")
    code_text = (
        f"{code.get('git_commit')}" + (" (uncommitted changes)" if code.get("dirty") else "")
        if isinstance(code, Mapping)
        else DASH
    )
    parameters = lineage.get("parameters") if isinstance(lineage.get("parameters"), Mapping) else {}
    return Section(
        "Lineage",
        fields=[
            ("training data", _fingerprint(lineage.get("training_data"))),
            ("evaluation data", _fingerprint(lineage.get("evaluation_data"))),
            ("code commit", code_text),
            ("parent version", text(lineage.get("parent_version"))),
        ],
        tables=[
            Table(
                ("parameter", "value"),
                [[k, text(v)] for k, v in sorted((parameters or {}).items())],
                "Parameters",
                "no parameters recorded",
            )
        ],
    )


def _evaluation(ev: Mapping[str, Any] | None) -> Section:
    if ev is None:
        return Section("Evaluation", ["No evaluation recorded."])
    baseline = ev["baseline"] or {}
    metrics = Table(
        ("metric", "value", "baseline"),
        [[k, text(v), text(baseline.get(k))] for k, v in sorted(ev["metrics"].items())],
        "Metrics",
    )
    slices = Table(
        ("slice", "metric", "value"),
        [
            [name, metric, text(value)]
            for name, values in sorted(ev["slices"].items())
            for metric, value in sorted(values.items())
        ],
        "Slices",
        "no slices recorded",
    )
    source = (
        "derived from the metrics given at registration"
        if ev["derived"]
        else f"recorded by {ev['created_by']} at {ev['created_at']}"
    )
    return Section(
        "Evaluation",
        fields=[
            ("evaluated at", text(ev["evaluated_at"])),
            ("dataset", _fingerprint(ev["dataset"])),
            ("record", source),
            ("digest", text(ev["digest"])),
        ],
        tables=[metrics, slices],
    )


def _constraints(rule: Mapping[str, Any]) -> str:
    parts = []
    if rule.get("min") is not None or rule.get("max") is not None:
        parts.append(f"range [{text(rule.get('min'))}, {text(rule.get('max'))}]")
    if rule.get("allowed") is not None:
        parts.append(f"allowed: {text(rule['allowed'])}")
    if rule.get("pattern"):
        parts.append(f"pattern {rule['pattern']}")
    if rule.get("max_length") is not None:
        parts.append(f"max length {rule['max_length']}")
    if rule.get("unit"):
        parts.append(f"unit {rule['unit']}")
    return "; ".join(parts) or DASH


def _contract(contract: Mapping[str, Any]) -> Section:
    rows = [
        [
            rule["name"],
            rule.get("type", ""),
            text(bool(rule.get("nullable"))),
            _constraints(rule),
            text(bool(rule.get("pii"))),
            text(rule.get("description")),
        ]
        for rule in contract.get("inputs", [])
    ]
    stored = (
        "Checked on every request."
        if contract["stored"]
        else "No data contract was stored: only the names and types of the signature."
    )
    return Section(
        "Data contract",
        [stored],
        [("outputs", text(contract.get("outputs") or None))],
        [Table(("field", "type", "nullable", "constraints", "pii", "description"), rows, "Inputs")],
    )


def _counts(approval: Mapping[str, Any]) -> str:
    """Whether an approval still counts for policies: only an approved one bound to the
    version's current evidence does."""
    if approval["state"] != "approved":
        return DASH
    if approval.get("valid"):
        return "valid"
    return "stale: " + text(approval.get("stale_because"))


def _approvals(found: Sequence[Mapping[str, Any]]) -> Section:
    rows = [
        [
            a["state"],
            text(a["requested_by"]),
            text(a["decided_by"]),
            text(a["decided_at"]),
            text(a["rationale"]),
            _counts(a),
        ]
        for a in found
    ]
    columns = ("state", "requested by", "decided by", "decided at", "rationale", "counts")
    return Section("Approvals", tables=[Table(columns, rows, empty="no approvals")])


def _deployed(found: Sequence[Mapping[str, Any]]) -> Section:
    rows = [[d["endpoint"], d["role"], f"{d['weight']:g}%", text(d["stopped"])] for d in found]
    columns = ("endpoint", "role", "traffic", "stopped")
    return Section("Deployments", tables=[Table(columns, rows, empty="not deployed")])


def _monitoring(found: Sequence[Mapping[str, Any]]) -> Section:
    traffic, monitors, alerts, hidden = [], [], [], []
    for d in found:
        m = d["monitoring"]
        if m is None:
            hidden.append(d["endpoint"])
            continue
        traffic.append(
            [
                d["endpoint"],
                text(m["requests"]),
                text(m["error_rate"]),
                text(m["latency_p99_ms"]),
            ]
        )
        for verdict in m["monitors"]:
            monitors.append(
                [
                    d["endpoint"],
                    f"v{m['monitors_judge_version']}",
                    verdict["monitor"] + (f" [{verdict['subject']}]" if verdict["subject"] else ""),
                    verdict["status"],
                    text(verdict["value"]),
                    f"{verdict['op']} {verdict['threshold']:g}",
                ]
            )
        for alert in m["firing_alerts"]:
            alerts.append(
                [d["endpoint"], alert["monitor"], alert["severity"], text(alert["started_at"])]
            )
    notes = (
        ["Live traffic of this version over the last day; monitors judge each endpoint's primary."]
        if found
        else ["Not deployed: nothing to monitor."]
    )
    if hidden:
        notes.append(f"Not shown (needs monitor:read there): {', '.join(hidden)}.")
    return Section(
        "Monitoring",
        notes,
        tables=[
            Table(("endpoint", "requests", "error rate", "p99 ms"), traffic, "Traffic"),
            Table(
                ("endpoint", "judges", "monitor", "status", "value", "breach when"),
                monitors,
                "Monitors",
                "no monitors",
            ),
            Table(("endpoint", "monitor", "severity", "since"), alerts, "Firing alerts", "none"),
        ]
        if found
        else [],
    )


def _test_score(score: Mapping[str, Any]) -> Section:
    tests = [
        [t["id"], t["title"], f"{t['points']:g}", t["how"], text(t["evidence"] or None)]
        for section in score["sections"].values()
        for t in section["tests"]
    ]
    return Section(
        "ML Test Score",
        [
            "Breck et al., The ML Test Score (IEEE Big Data 2017): 1 point per test automated, "
            "0.5 attested by a person; the final score is the lowest section."
        ],
        [
            ("final", f"{score['final']:g}, band {score['band']}"),
            ("interpretation", score["interpretation"]),
            ("scored version", text(score["version"])),
            *((f"{name} section", f"{s['score']:g} / 7") for name, s in score["sections"].items()),
        ],
        [Table(("test", "title", "points", "how", "evidence"), tests)],
    )


# -- Markdown -----------------------------------------------------------------------------


def _md(value: str) -> str:
    """Text safe in Markdown: no raw HTML gets through, no link or image is made of a
    recorded value (``[x](javascript:...)``), and a table cell stays one cell."""
    escaped = value.replace("&", "&amp;").replace("<", "&lt;")
    escaped = escaped.replace("[", "\\[").replace("]", "\\]")
    return escaped.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    out = [f"**{_md(table.title)}**", ""] if table.title else []
    if not table.rows:
        return [*out, f"_{_md(table.empty)}_", ""]
    out.append("| " + " | ".join(_md(c) for c in table.columns) + " |")
    out.append("|" + "|".join("---" for _ in table.columns) + "|")
    out.extend("| " + " | ".join(_md(cell) for cell in row) + " |" for row in table.rows)
    return [*out, ""]


def to_markdown(card: Mapping[str, Any]) -> str:
    lines = [
        f"# {_md(title(card))}",
        "",
        f"_Generated by slipway from its records at {_md(card['generated_at'])}; "
        "not edited by hand._",
        "",
    ]
    for section in sections(card):
        lines += [f"## {_md(section.title)}", ""]
        for paragraph in section.text:
            lines += [_md(paragraph), ""]
        if section.fields:
            lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in section.fields] + [""]
        for table in section.tables:
            lines += _md_table(table)
    return "\n".join(lines).rstrip("\n") + "\n"


# -- HTML ---------------------------------------------------------------------------------

_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:68rem;color:#1b1f24;"
    "padding:0 1rem}h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;"
    "border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:1.8rem}"
    "h3{font-size:.95rem;margin:1rem 0 .3rem}.sub{color:#57606a;margin-top:0}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem}"
    "dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}"
    "table{border-collapse:collapse;margin:.3rem 0 .8rem;width:100%}"
    "th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top;"
    "overflow-wrap:anywhere}th{background:#f6f8fa}.empty{color:#57606a;font-style:italic}"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _html_table(table: Table) -> str:
    head = f"<h3>{_e(table.title)}</h3>" if table.title else ""
    if not table.rows:
        return f"{head}<p class=empty>{_e(table.empty)}</p>"
    columns = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    return f"{head}<table><tr>{columns}</tr>{rows}</table>"


def to_html(card: Mapping[str, Any]) -> str:
    """One standalone page: inline CSS, no scripts, nothing fetched, all values escaped."""
    body = [
        f"<header><h1>{_e(title(card))}</h1><p class=sub>Generated by slipway from its "
        f"records at {_e(card['generated_at'])}; not edited by hand.</p></header>"
    ]
    for section in sections(card):
        parts = [f"<h2>{_e(section.title)}</h2>"]
        parts += [f"<p>{_e(p)}</p>" for p in section.text]
        if section.fields:
            items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in section.fields)
            parts.append(f"<dl>{items}</dl>")
        parts += [_html_table(t) for t in section.tables]
        body.append(f"<section>{''.join(parts)}</section>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title(card))}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
