"""What an endpoint's shadows would have answered, beside what its primary did answer.

A shadow answers a copy of every live request; its answers are counted in shadow
windows, never returned. The report puts each shadow next to the primary over one time
range: traffic, errors, latency, how often it gave the class the caller got, and how far
its predictions moved from the primary's::

    report = shadow_report(window_store, endpoint, now - timedelta(hours=1), now)
    report["shadows"][0]["agreement"]  # 0.97: the share of compared rows alike

Every float is finite or None, so the report is plain JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slipway.errors import ValidationFailed
from slipway.monitoring.drift import column_drift, json_float
from slipway.monitoring.windows import Window, WindowStore
from slipway.serving.endpoints import Endpoint

__all__ = ["shadow_report"]


def shadow_report(
    window_store: WindowStore, endpoint: Endpoint, start: datetime, end: datetime
) -> dict[str, Any]:
    """The primary and every shadow of ``endpoint`` over ``[start, end)``: each shadow
    that answered copies in the range, and each shadow in the plan even if it did not."""
    name = endpoint.name
    primary = window_store.read(name, start, end, version=endpoint.version)
    answered = window_store.versions(name, start, end, shadow=True)
    shadows = []
    for version in sorted(set(answered) | set(endpoint.shadow_versions)):
        window = window_store.read(name, start, end, version=version, shadow=True)
        shadows.append(_shadow(version, window, primary))
    return {
        "endpoint": name,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "primary": {"version": endpoint.version, **_traffic(primary)},
        "shadows": shadows,
    }


def _traffic(window: Window) -> dict[str, Any]:
    return {
        "requests": window.requests,
        "error_rate": json_float(window.rate("errors")),
        "latency_p50_ms": json_float(window.latency_ms(0.5)),
        "latency_p99_ms": json_float(window.latency_ms(0.99)),
    }


def _shadow(version: int, window: Window, primary: Window) -> dict[str, Any]:
    # The shadow compared its answer with whichever version answered the caller (the
    # primary, a canary, a fallback): together, that is "what callers got".
    compared = sum(counts[0] for counts in window.agreement.values())
    agreed = sum(counts[1] for counts in window.agreement.values())
    traffic = _traffic(window)
    return {
        "version": version,
        "requests": traffic.pop("requests"),
        "errors": window.errors,
        **traffic,
        "agreement": agreed / compared if compared else None,
        "compared": compared,
        "output_shift": _output_shift(primary, window),
    }


def _output_shift(primary: Window, shadow: Window) -> dict[str, Any] | None:
    """The shadow's predictions against the primary's (the reference), or None when an
    arm predicted nothing or the two are not comparable (classes against numbers)."""
    reference, current = primary.profile.prediction, shadow.profile.prediction
    if reference is None or current is None:
        return None
    try:
        drift = column_drift("prediction", reference, current, role="prediction")
    except ValidationFailed:
        return None
    return {
        "statistic": drift.statistic,
        "score": json_float(drift.score),
        "verdict": drift.verdict,
    }
