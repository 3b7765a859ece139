"""One endpoint's health over a window, as plain data: what reports and the API show.

:func:`summarize` gathers traffic counters, latency, drift against the reference,
distributions to plot (reference vs current), label quality with the reliability bins,
the time series of requests and latency, monitor verdicts and firing alerts. Rendering
(terminal tables, HTML) lives in report.py and only reads this dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from slipway.ids import utcnow
from slipway.monitoring.alerts import AlertService
from slipway.monitoring.drift import profile_drift
from slipway.monitoring.feedback import FeedbackService, quality_of
from slipway.monitoring.monitors import MonitorService
from slipway.monitoring.profile import Profile
from slipway.monitoring.quality import label_delay
from slipway.monitoring.sketches import ColumnSketch
from slipway.monitoring.windows import Window, WindowStore
from slipway.registry.versions import VersionService
from slipway.serving.endpoints import EndpointService

# Quantile edges of the reference that bin numeric distributions for plots.
_PLOT_QUANTILES = np.linspace(0.0, 1.0, 21)
_TOP_ITEMS = 12


@dataclass
class Summarizer:
    endpoints: EndpointService
    versions: VersionService
    windows: WindowStore
    feedback: FeedbackService
    monitors: MonitorService
    alerts: AlertService

    def summarize(
        self,
        endpoint: str,
        window_s: int = 86400,
        *,
        version: int | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Everything about ``endpoint`` (its primary version unless ``version``) over the
        last ``window_s`` seconds."""
        now = now or utcnow()
        start = now - timedelta(seconds=window_s)
        ep = self.endpoints.get(endpoint)
        number = version if version is not None else ep.version
        v = self.versions.get(ep.model, number)
        window = self.windows.read(endpoint, start, now, version=number)
        reference = Profile.from_dict(v.profile) if v.profile else None
        classifier = v.signature.get("classes") is not None
        return {
            "endpoint": endpoint,
            "model": ep.model,
            "version": number,
            "window": {"start": start.isoformat(), "end": now.isoformat(), "seconds": window_s},
            "traffic": _traffic(window),
            "drift": (
                profile_drift(reference, window.profile).to_dict()
                if reference is not None
                else None
            ),
            "distributions": _distributions(reference, window.profile),
            "quality": self._quality(endpoint, start, now, number, classifier),
            "series": [
                {
                    "start": at.isoformat(),
                    "requests": w.requests,
                    "errors": w.errors,
                    "p50_ms": w.latency_ms(0.5),
                    "p99_ms": w.latency_ms(0.99),
                }
                for at, w in self.windows.series(endpoint, start, now, version=number)
            ],
            "monitors": [e.verdict() for e in self.monitors.evaluate(now, endpoint=endpoint)],
            "alerts": [a.to_dict() for a in self.alerts.list(endpoint=endpoint, state="firing")],
        }

    def _quality(
        self, endpoint: str, start: datetime, end: datetime, version: int, classifier: bool
    ) -> dict[str, Any] | None:
        labeled = self.feedback.labeled(endpoint, start, end, version=version)
        if not labeled:
            return None
        quality = quality_of(labeled, classifier=classifier)
        quality["label_delay"] = label_delay(
            [x.predicted_at for x in labeled], [x.received_at for x in labeled]
        )
        return quality


def _traffic(w: Window) -> dict[str, Any]:
    return {
        "requests": w.requests,
        "rows": w.rows,
        "errors": w.errors,
        "violations": w.violations,
        "nan_outputs": w.nan_outputs,
        "error_rate": w.rate("errors"),
        "violation_rate": w.rate("violations"),
        "nan_rate": w.rate("nan_outputs"),
        "latency_ms": {
            "p50": w.latency_ms(0.5),
            "p95": w.latency_ms(0.95),
            "p99": w.latency_ms(0.99),
        },
    }


def _distributions(reference: Profile | None, current: Profile) -> dict[str, Any]:
    """Reference vs current, per feature and for the prediction and score, binned alike."""
    out: dict[str, Any] = {}
    pairs: dict[str, tuple[ColumnSketch | None, ColumnSketch | None]] = {}
    ref_columns = reference.columns if reference else {}
    for name in sorted(set(ref_columns) | set(current.columns)):
        pairs[name] = (ref_columns.get(name), current.columns.get(name))
    for role in ("prediction", "score"):
        ref_sketch = getattr(reference, role) if reference else None
        pairs[f"[{role}]"] = (ref_sketch, getattr(current, role))
    for name, (ref, cur) in pairs.items():
        base = ref if ref is not None and ref.count else cur
        if base is None or not base.count:
            continue
        if base.kind == "numeric":
            out[name] = _numeric(base, ref, cur)
        else:
            out[name] = _categorical(ref, cur)
    return out


def _share(sketch: ColumnSketch | None, split: list[float]) -> list[float] | None:
    if sketch is None or not sketch.count or sketch.kind != "numeric":
        return None
    return [float(x) for x in sketch.pmf(split)]


def _numeric(base: ColumnSketch, ref: ColumnSketch | None, cur: ColumnSketch | None) -> Any:
    edges = sorted({float(x) for x in base.quantiles(list(_PLOT_QUANTILES))})
    split = edges[1:-1] if len(edges) > 2 else edges[:1]
    return {
        "kind": "numeric",
        "edges": edges,
        "reference": _share(ref, split),
        "current": _share(cur, split),
    }


def _categorical(ref: ColumnSketch | None, cur: ColumnSketch | None) -> Any:
    def shares(sketch: ColumnSketch | None) -> dict[str, float]:
        if sketch is None or not sketch.count or sketch.kind != "categorical":
            return {}
        freq = sketch.frequencies()
        return {k: v / sketch.count for k, v in freq.items()}

    r, c = shares(ref), shares(cur)
    items = sorted(set(r) | set(c), key=lambda k: -(r.get(k, 0.0) + c.get(k, 0.0)))[:_TOP_ITEMS]
    return {
        "kind": "categorical",
        "items": items,
        "reference": [r.get(k, 0.0) for k in items] if r else None,
        "current": [c.get(k, 0.0) for k in items] if c else None,
    }
