"""Every Prometheus metric slipway exports, declared once (like settings.py)."""

from __future__ import annotations

from prometheus_client import Counter

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
