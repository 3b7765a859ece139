"""What one monitor concluded about one subject over one window.

Monitors (monitors.py) produce these; alerts (alerts.py) turn breaches into firing alerts
and recoveries into resolved ones. ``insufficient`` (too few samples) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["ok", "breach", "insufficient"]


@dataclass(frozen=True)
class Evaluation:
    monitor_id: str
    monitor: str
    endpoint: str
    model: str
    version: int
    metric: str
    # What the monitor judged within its endpoint: a feature name for drift, else "".
    subject: str
    severity: str
    status: Status
    value: float | None
    op: str
    threshold: float
    samples: int
    min_samples: int
    window_start: datetime
    window_end: datetime
    # Further numbers behind the value (drift statistics, reliability bins, ...).
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """One firing alert at a time per monitor, version and subject."""
        return f"{self.monitor_id}:{self.version}:{self.subject}"

    def verdict(self) -> dict[str, Any]:
        """The short form shown in reports and API answers."""
        return {
            "monitor": self.monitor,
            "metric": self.metric,
            "subject": self.subject,
            "status": self.status,
            "value": self.value,
            "op": self.op,
            "threshold": self.threshold,
            "samples": self.samples,
            "severity": self.severity,
        }

    def to_evidence(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "subject": self.subject,
            "value": self.value,
            "op": self.op,
            "threshold": self.threshold,
            "samples": self.samples,
            "min_samples": self.min_samples,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            **self.evidence,
        }
