"""Monitors: declarative rules over an endpoint's live windows and labels.

A monitor says: over the last ``window_s`` seconds of the endpoint's primary version,
``metric`` (of ``feature``, for drift) must not be ``op`` ``threshold``, judged only
with at least ``min_samples`` samples. Every deploy (re)creates the built-in set
(:func:`default_monitors`); a person can add, edit or disable monitors through the API,
and an edited built-in is theirs from then on (the next deploy leaves it alone).

Evaluation (:meth:`MonitorService.evaluate`) yields one :class:`Evaluation` per monitor
and subject; alerts.py turns breaches into alerts.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, SlipwayError, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.monitoring.drift import DriftThresholds, profile_drift
from slipway.monitoring.evaluation import Evaluation, Status
from slipway.monitoring.feedback import FeedbackService, Labeled, quality_of
from slipway.monitoring.profile import Profile
from slipway.monitoring.windows import Window, WindowStore
from slipway.registry.models import check_slug
from slipway.registry.versions import Version
from slipway.store.engine import transaction
from slipway.store.tables import endpoints, models, monitors, versions

log = logging.getLogger("slipway.monitoring")


@dataclass(frozen=True)
class Metric:
    name: str
    source: str  # window | drift | labels | age
    help: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("feature_drift", "drift", "effect size of each feature's drift (W1/std, JS)"),
        Metric("prediction_drift", "drift", "effect size of the prediction and score drift"),
        Metric("error_rate", "window", "failed requests / requests"),
        Metric("violation_rate", "window", "rows refused by the contract / rows offered"),
        Metric("nan_rate", "window", "predicted rows with a NaN or infinite output / rows"),
        Metric("latency_p50_ms", "window", "median request latency (ms)"),
        Metric("latency_p95_ms", "window", "95th percentile request latency (ms)"),
        Metric("latency_p99_ms", "window", "99th percentile request latency (ms)"),
        Metric("requests", "window", "requests served"),
        Metric("model_age_days", "age", "days since the version was registered"),
        Metric("accuracy", "labels", "share of labeled predictions that were right"),
        Metric("f1", "labels", "macro F1 of labeled predictions"),
        Metric("roc_auc", "labels", "ROC AUC of labeled predictions"),
        Metric("log_loss", "labels", "log loss of labeled predictions"),
        Metric("brier", "labels", "Brier score of labeled predictions"),
        Metric("calibration_error", "labels", "expected calibration error (top label)"),
        Metric("mae", "labels", "mean absolute error (regression)"),
        Metric("rmse", "labels", "root mean squared error (regression)"),
        Metric("r2", "labels", "R² (regression)"),
    )
}
SEVERITIES = ("info", "warning", "critical")
OPS = (">", "<")
_QUALITY_KEY = {"calibration_error": "ece"}
DEFAULT_LATENCY_SLO_MS = 500.0


@dataclass(frozen=True)
class Monitor:
    id: str
    endpoint: str
    name: str
    metric: str
    feature: str | None
    window_s: int
    op: str
    threshold: float
    min_samples: int
    severity: str
    enabled: bool
    builtin: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        return out

    def breached(self, value: float) -> bool:
        return value > self.threshold if self.op == ">" else value < self.threshold


def default_monitors(version: Version, latency_slo_ms: float | None) -> list[dict[str, Any]]:
    """The built-in monitors for an endpoint serving ``version``."""
    hour, quarter, day = 3600, 900, 86400
    out: list[dict[str, Any]] = [
        _spec("feature-drift", "feature_drift", hour, ">", 0.1, 500, "warning"),
        _spec("prediction-drift", "prediction_drift", hour, ">", 0.1, 500, "warning"),
        _spec("error-rate", "error_rate", quarter, ">", 0.05, 100, "critical"),
        _spec(
            "latency-p99",
            "latency_p99_ms",
            quarter,
            ">",
            latency_slo_ms or DEFAULT_LATENCY_SLO_MS,
            100,
            "warning",
        ),
        _spec("contract-violations", "violation_rate", quarter, ">", 0.05, 100, "warning"),
        _spec("nan-outputs", "nan_rate", quarter, ">", 0.01, 100, "critical"),
        _spec("model-age", "model_age_days", day, ">", 180, 0, "info"),
    ]
    classifier = version.signature.get("classes") is not None
    metrics = version.lineage.get("metrics", {}) if isinstance(version.lineage, dict) else {}
    if classifier:
        out.append(_spec("calibration", "calibration_error", day, ">", 0.1, 200, "warning"))
        if isinstance(metrics.get("accuracy"), int | float):
            floor = round(float(metrics["accuracy"]) - 0.05, 4)
            out.append(_spec("accuracy", "accuracy", day, "<", floor, 200, "warning"))
    elif isinstance(metrics.get("mae"), int | float):
        ceiling = round(float(metrics["mae"]) * 1.2, 6)
        out.append(_spec("mae", "mae", day, ">", ceiling, 200, "warning"))
    return out


def _spec(
    name: str, metric: str, window_s: int, op: str, threshold: float, samples: int, sev: str
) -> dict[str, Any]:
    return {
        "name": name,
        "metric": metric,
        "feature": None,
        "window_s": window_s,
        "op": op,
        "threshold": float(threshold),
        "min_samples": samples,
        "severity": sev,
    }


def check_monitor(fields: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate monitor fields; errors name the field."""
    out: dict[str, Any] = {}
    allowed = {"name", "metric", "feature", "window_s", "op", "threshold", "min_samples"}
    allowed |= {"severity", "enabled"}
    for key in fields:
        if key not in allowed:
            raise ValidationFailed.field(key, "unknown field")
    required = () if partial else ("name", "metric", "threshold")
    for key in required:
        if fields.get(key) is None:
            raise ValidationFailed.field(key, "required")
    if "name" in fields:
        out["name"] = check_slug(fields["name"])
    if "metric" in fields:
        if fields["metric"] not in METRICS:
            raise ValidationFailed.field("metric", f"must be one of {', '.join(METRICS)}")
        out["metric"] = fields["metric"]
    if fields.get("feature") is not None:
        if not isinstance(fields["feature"], str) or not fields["feature"]:
            raise ValidationFailed.field("feature", "must be a feature name")
        out["feature"] = fields["feature"]
    elif "feature" in fields:
        out["feature"] = None
    numbers = {
        "window_s": (int, 60, 90 * 86400),
        "min_samples": (int, 0, 10**9),
        "threshold": (float, -1e18, 1e18),
    }
    for key, (kind, low, high) in numbers.items():
        if key not in fields or fields[key] is None:
            continue
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationFailed.field(key, "must be a number")
        if kind is int and value != int(value):
            raise ValidationFailed.field(key, "must be a whole number")
        if not low <= value <= high:
            raise ValidationFailed.field(key, f"must be between {low} and {high}")
        out[key] = kind(value)
    if "op" in fields:
        if fields["op"] not in OPS:
            raise ValidationFailed.field("op", 'must be ">" or "<"')
        out["op"] = fields["op"]
    if "severity" in fields:
        if fields["severity"] not in SEVERITIES:
            raise ValidationFailed.field("severity", f"must be one of {', '.join(SEVERITIES)}")
        out["severity"] = fields["severity"]
    if "enabled" in fields:
        if not isinstance(fields["enabled"], bool):
            raise ValidationFailed.field("enabled", "must be true or false")
        out["enabled"] = fields["enabled"]
    return out


@dataclass
class _Target:
    """The endpoint as a monitor sees it: its primary version and that version's data."""

    endpoint: str
    model: str
    version: int
    registered_at: datetime
    profile: Profile | None
    classifier: bool


class MonitorService:
    def __init__(self, engine: Engine, windows: WindowStore, feedback: FeedbackService) -> None:
        self.engine = engine
        self.windows = windows
        self.feedback = feedback

    # -- rules ----------------------------------------------------------------------------
    def list(self, endpoint: str) -> builtins.list[Monitor]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(monitors).where(monitors.c.endpoint == endpoint).order_by(monitors.c.name)
            ).all()
        return [Monitor(**r._asdict()) for r in rows]

    def get(self, endpoint: str, name: str) -> Monitor:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(monitors).where(monitors.c.endpoint == endpoint, monitors.c.name == name)
            ).first()
        if row is None:
            raise NotFound(f"monitor {name!r} not found on endpoint {endpoint!r}")
        return Monitor(**row._asdict())

    def create(self, endpoint: str, fields: Mapping[str, Any], *, actor: Actor) -> Monitor:
        values = {
            "op": ">",
            "window_s": 3600,
            "min_samples": 100,
            "severity": "warning",
            "enabled": True,
            "feature": None,
            **check_monitor(fields),
        }
        self._endpoint_exists(endpoint)
        now = utcnow()
        row = {
            "id": new_id(),
            "endpoint": endpoint,
            "builtin": False,
            "created_by": actor.name,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        try:
            with transaction(self.engine) as conn:
                conn.execute(monitors.insert().values(**row))
                append(
                    conn,
                    actor,
                    "monitor.create",
                    target_kind="endpoint",
                    target=endpoint,
                    after=_audited(row),
                )
        except IntegrityError:
            raise Conflict(f"monitor {values['name']!r} already exists on {endpoint!r}") from None
        return self.get(endpoint, values["name"])

    def update(
        self, endpoint: str, name: str, fields: Mapping[str, Any], *, actor: Actor
    ) -> Monitor:
        changes = check_monitor(fields, partial=True)
        if not changes:
            raise ValidationFailed.field("body", "nothing to change")
        before = self.get(endpoint, name)
        # An edited built-in is the editor's now: the next deploy must not undo the edit.
        changes = {**changes, "builtin": False, "updated_at": utcnow()}
        try:
            with transaction(self.engine) as conn:
                conn.execute(update(monitors).where(monitors.c.id == before.id).values(**changes))
                append(
                    conn,
                    actor,
                    "monitor.update",
                    target_kind="endpoint",
                    target=endpoint,
                    before=_audited(before.to_dict()),
                    after=_audited(changes) | {"name": name},
                )
        except IntegrityError:
            raise Conflict(f"monitor {changes.get('name')!r} already exists") from None
        return self.get(endpoint, changes.get("name", name))

    def delete(self, endpoint: str, name: str, *, actor: Actor) -> None:
        before = self.get(endpoint, name)
        with transaction(self.engine) as conn:
            conn.execute(delete(monitors).where(monitors.c.id == before.id))
            append(
                conn,
                actor,
                "monitor.delete",
                target_kind="endpoint",
                target=endpoint,
                before=_audited(before.to_dict()),
            )

    def ensure_defaults(
        self, conn: Connection, endpoint: str, version: Version, latency_slo_ms: float | None
    ) -> None:
        """(Re)create the built-in monitors in the deploy's transaction; monitors a person
        created or edited are kept."""
        now = utcnow()
        existing = {
            r.name: r
            for r in conn.execute(
                select(monitors.c.id, monitors.c.name, monitors.c.builtin).where(
                    monitors.c.endpoint == endpoint
                )
            )
        }
        wanted = default_monitors(version, latency_slo_ms)
        for spec in wanted:
            row = existing.get(spec["name"])
            if row is None:
                conn.execute(
                    monitors.insert().values(
                        id=new_id(),
                        endpoint=endpoint,
                        enabled=True,
                        builtin=True,
                        created_by="slipway",
                        created_at=now,
                        updated_at=now,
                        **spec,
                    )
                )
            elif row.builtin:
                conn.execute(
                    update(monitors).where(monitors.c.id == row.id).values(updated_at=now, **spec)
                )
        # Built-ins that no longer apply (e.g. the accuracy floor of a model without one).
        stale = [
            r.id
            for name, r in existing.items()
            if r.builtin and name not in {s["name"] for s in wanted}
        ]
        if stale:
            conn.execute(delete(monitors).where(monitors.c.id.in_(stale)))

    def _endpoint_exists(self, endpoint: str) -> None:
        with self.engine.connect() as conn:
            if (
                conn.execute(select(endpoints.c.id).where(endpoints.c.name == endpoint)).first()
                is None
            ):
                raise NotFound(f"endpoint {endpoint!r} not found")

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(
        self, now: datetime | None = None, *, endpoint: str | None = None
    ) -> builtins.list[Evaluation]:
        """Judge every enabled monitor (of one ``endpoint``) on its primary version."""
        now = now or utcnow()
        out: builtins.list[Evaluation] = []
        for target in self._targets(endpoint):
            rules = [m for m in self.list(target.endpoint) if m.enabled]
            out.extend(_Judge(self, target, now).run(rules))
        return out

    def _targets(self, endpoint: str | None) -> builtins.list[_Target]:
        query = (
            select(
                endpoints.c.name,
                models.c.name.label("model"),
                versions.c.number,
                versions.c.created_at,
                versions.c.profile,
                versions.c.signature,
            )
            .join(versions, versions.c.id == endpoints.c.version_id)
            .join(models, models.c.id == endpoints.c.model_id)
        )
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(endpoints.c.name)).all()
        return [
            _Target(
                r.name,
                r.model,
                r.number,
                r.created_at,
                Profile.from_dict(r.profile) if r.profile else None,
                r.signature.get("classes") is not None,
            )
            for r in rows
        ]


class _Judge:
    """Evaluates one endpoint's monitors, reading each window and label set once."""

    def __init__(self, service: MonitorService, target: _Target, now: datetime) -> None:
        self.service = service
        self.target = target
        self.now = now
        self._windows: dict[int, Window] = {}
        self._labels: dict[int, builtins.list[Labeled]] = {}

    def window(self, seconds: int) -> Window:
        if seconds not in self._windows:
            self._windows[seconds] = self.service.windows.read(
                self.target.endpoint,
                self.now - timedelta(seconds=seconds),
                self.now,
                version=self.target.version,
            )
        return self._windows[seconds]

    def labels(self, seconds: int) -> builtins.list[Labeled]:
        if seconds not in self._labels:
            self._labels[seconds] = self.service.feedback.labeled(
                self.target.endpoint,
                self.now - timedelta(seconds=seconds),
                self.now,
                version=self.target.version,
            )
        return self._labels[seconds]

    def run(self, rules: builtins.list[Monitor]) -> builtins.list[Evaluation]:
        out: builtins.list[Evaluation] = []
        for rule in rules:
            source = METRICS[rule.metric].source
            compute: Callable[[Monitor], builtins.list[Evaluation]] = {
                "window": self._window_metric,
                "drift": self._drift,
                "labels": self._label_metric,
                "age": self._age,
            }[source]
            try:
                out.extend(compute(rule))
            except SlipwayError as exc:
                # One monitor that cannot be judged (data that no longer fits its
                # reference, say) must not silence the others: it reports why instead.
                log.warning("monitor %s of %s: %s", rule.name, self.target.endpoint, exc)
                out.append(self._result(rule, None, 0, evidence={"reason": exc.message}))
        return out

    def _result(
        self,
        rule: Monitor,
        value: float | None,
        samples: int,
        subject: str = "",
        evidence: dict[str, Any] | None = None,
        status: Status | None = None,
    ) -> Evaluation:
        if status is None:
            if value is None or samples < rule.min_samples:
                status = "insufficient"
            else:
                status = "breach" if rule.breached(value) else "ok"
        return Evaluation(
            monitor_id=rule.id,
            monitor=rule.name,
            endpoint=self.target.endpoint,
            model=self.target.model,
            version=self.target.version,
            metric=rule.metric,
            subject=subject,
            severity=rule.severity,
            status=status,
            value=value,
            op=rule.op,
            threshold=rule.threshold,
            samples=samples,
            min_samples=rule.min_samples,
            window_start=self.now - timedelta(seconds=rule.window_s),
            window_end=self.now,
            evidence=evidence or {},
        )

    def _window_metric(self, rule: Monitor) -> builtins.list[Evaluation]:
        w = self.window(rule.window_s)
        value: float | None
        if rule.metric == "requests":
            return [self._result(rule, float(w.requests), max(w.requests, rule.min_samples))]
        if rule.metric.startswith("latency_"):
            q = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
            value, samples = w.latency_ms(q[rule.metric]), w.latency.count
        else:
            what = {"error_rate": "errors", "violation_rate": "violations"}.get(
                rule.metric, "nan_outputs"
            )
            value = w.rate(what)
            samples = {"errors": w.requests, "violations": w.rows + w.violations}.get(what, w.rows)
        evidence = {
            "requests": w.requests,
            "rows": w.rows,
            "errors": w.errors,
            "violations": w.violations,
            "nan_outputs": w.nan_outputs,
        }
        return [self._result(rule, value, samples, evidence=evidence)]

    def _drift(self, rule: Monitor) -> builtins.list[Evaluation]:
        if self.target.profile is None:
            return [
                self._result(
                    rule,
                    None,
                    0,
                    evidence={"reason": "the version has no reference profile"},
                )
            ]
        w = self.window(rule.window_s)
        thresholds = DriftThresholds(
            numeric_wasserstein=rule.threshold,
            categorical_js=rule.threshold,
            min_samples=rule.min_samples,
        )
        report = profile_drift(self.target.profile, w.profile, thresholds)
        wanted = "feature" if rule.metric == "feature_drift" else None
        out = []
        for col in report.columns:
            is_feature = col.role == "feature"
            if (wanted == "feature") != is_feature:
                continue
            if rule.feature is not None and col.column != rule.feature:
                continue
            status: Status = {"drift": "breach", "ok": "ok"}.get(col.verdict, "insufficient")  # type: ignore[assignment]
            subject = col.column if is_feature else col.role
            out.append(
                self._result(rule, col.score, col.n_current, subject, col.to_dict(), status=status)
            )
        return out

    def _label_metric(self, rule: Monitor) -> builtins.list[Evaluation]:
        labeled = self.labels(rule.window_s)
        if not labeled:
            return [self._result(rule, None, 0)]
        quality = quality_of(labeled, classifier=self.target.classifier)
        raw = quality.get(_QUALITY_KEY.get(rule.metric, rule.metric))
        value = float(raw) if isinstance(raw, int | float) else None
        evidence = {k: v for k, v in quality.items() if k != "reliability"}
        if rule.metric == "calibration_error":
            evidence["reliability"] = quality.get("reliability")
        return [self._result(rule, value, len(labeled), evidence=evidence)]

    def _age(self, rule: Monitor) -> builtins.list[Evaluation]:
        days = (self.now - self.target.registered_at).total_seconds() / 86400
        return [self._result(rule, round(days, 3), max(1, rule.min_samples))]


def _audited(row: Mapping[str, Any]) -> dict[str, Any]:
    """A monitor's fields as the audit log keeps them: without id and timestamps."""
    return {k: v for k, v in row.items() if k not in {"id", "created_at", "updated_at"}}
