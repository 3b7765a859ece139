"""Every Prometheus metric slipway exports, declared once (like settings.py)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

AUTH_FAILURES = Counter(
    "slipway_auth_failures_total",
    "Requests refused for a missing, bad or revoked token.",
    ["reason"],
)
AUTHZ_DENIED = Counter(
    "slipway_authz_denied_total", "Requests refused for lack of a permission.", ["permission"]
)
RATE_LIMITED = Counter(
    "slipway_rate_limited_total", "Requests refused by a per-token rate limit.", ["limit"]
)
AUDIT_EVENTS = Counter(
    "slipway_audit_events_total", "Control actions written to the audit log.", ["action"]
)
CONTRACT_VIOLATIONS = Counter(
    "slipway_contract_violations_total",
    "Input values refused by a data contract.",
    ["endpoint", "version", "field"],
)
OUTPUT_CONTRACT_VIOLATIONS = Counter(
    "slipway_output_contract_violations_total",
    "Model answers withheld because they broke the output contract.",
    ["endpoint", "version"],
)
ALERTS_FIRED = Counter(
    "slipway_alerts_fired_total", "Alerts that started firing.", ["endpoint", "severity"]
)
ALERT_DELIVERIES = Counter(
    "slipway_alert_deliveries_total",
    "Alert delivery attempts by channel kind and outcome (delivered, retry, failed).",
    ["kind", "outcome"],
)
PREDICTIONS = Counter(
    "slipway_predictions_total",
    "Inference requests by outcome (ok, contract_violation, error, output_contract_violation).",
    ["endpoint", "version", "outcome"],
)
PREDICTION_ROWS = Counter(
    "slipway_prediction_rows_total", "Rows predicted.", ["endpoint", "version"]
)
PREDICTION_LATENCY = Histogram(
    "slipway_prediction_latency_seconds",
    "Time from decoded request to model answer, per request.",
    ["endpoint", "version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@lru_cache(maxsize=4096)
def prediction_meters(endpoint: str, version: str, outcome: str) -> tuple[Any, Any, Any]:
    """The (requests, rows, latency) children for one endpoint, version and outcome,
    looked up once: ``labels()`` costs more than the increment it serves on the hot path."""
    return (
        PREDICTIONS.labels(endpoint, version, outcome),
        PREDICTION_ROWS.labels(endpoint, version),
        PREDICTION_LATENCY.labels(endpoint, version),
    )


MODEL_CALLS = Counter(
    "slipway_model_calls_total",
    "Model calls by where they ran: inline (on the event loop: a short call not "
    "micro-batched, or a micro-batch whose request was the only one running) or thread "
    "(a predict thread).",
    ["where"],
)
RECORD_COMMITS = Counter(
    "slipway_record_commits_total",
    "Prediction-record commits by where they ran: inline (on the event loop, for a "
    "request that was the only one running, SQLite only) or thread (the writer thread, "
    "a group of records).",
    ["where"],
)
SHED = Counter(
    "slipway_shed_total",
    "Inference requests refused unrun: endpoint at capacity (503) or deadline passed (504).",
    ["endpoint", "reason"],
)
MIRRORED = Counter(
    "slipway_mirrored_total",
    "Copies of answered requests run beside the caller's version, by outcome: ok, error, "
    "or dropped (too many pending; the shadow is slower than the traffic).",
    ["endpoint", "version", "kind", "outcome"],
)
CONTROLLER_LEADER = Gauge(
    "slipway_controller_leader",
    "1 while this worker holds the controller lease and runs the shared jobs (rollouts, "
    "monitors, alert delivery, retention, window rollup, audit checkpoints), else 0.",
)
CONTROLLER_RUNS = Counter(
    "slipway_controller_runs_total",
    "Rounds of a shared job this worker ran as the controllers' leader.",
    ["job"],
)
