"""Offline evaluation records: what a version scored, on which data, and when.

A record holds overall metrics, the same metrics per slice of the evaluation data (for
example per region), the metrics of a simple baseline (majority class, mean predictor)
on the same data, the data's fingerprint and when the evaluation ran. Records are
append-only; a version's newest record is its evidence, and its digest is what an
approval is bound to. A version registered with ``lineage.metrics`` and no record yet
has that as its evidence (derived, evaluated when the version was registered).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from slipway.audit import Actor, append, canonical_json
from slipway.errors import Conflict, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.registry.lineage import check_fingerprint
from slipway.registry.versions import Version, VersionService
from slipway.store.engine import transaction
from slipway.store.tables import evaluations

MAX_METRICS = 100
MAX_SLICES = 200
# Clocks differ between the machine that evaluated and the server.
_FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class EvaluationRecord:
    model: str
    version: int
    version_id: str
    metrics: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    evaluated_at: datetime | None = None
    digest: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    id: str | None = None  # None: derived from the version's lineage.metrics

    @property
    def derived(self) -> bool:
        return self.id is None

    def age_days(self, now: datetime) -> float:
        assert self.evaluated_at is not None
        return (now - self.evaluated_at).total_seconds() / 86400

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "metrics": self.metrics,
            "slices": self.slices,
            "baseline": self.baseline,
            "dataset": self.dataset,
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
            "digest": self.digest,
            "derived": self.derived,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def digest_of(
    metrics: Mapping[str, float],
    slices: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, float],
    dataset: Mapping[str, Any] | None,
    evaluated_at: datetime,
) -> str:
    """SHA-256 of the record's evidence in canonical JSON (what approvals bind to)."""
    body = {
        "metrics": dict(metrics),
        "slices": {k: dict(v) for k, v in slices.items()},
        "baseline": dict(baseline),
        "dataset": dict(dataset) if dataset is not None else None,
        "evaluated_at": evaluated_at.replace(microsecond=0).isoformat(),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _numbers(value: Any, name: str, *, required: bool) -> dict[str, float]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping) or (required and not value):
        raise ValidationFailed.field(name, "must be a non-empty object of metric: number")
    if len(value) > MAX_METRICS:
        raise ValidationFailed.field(name, f"at most {MAX_METRICS} metrics")
    out: dict[str, float] = {}
    for key, number in value.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise ValidationFailed.field(name, "metric names must be 1-64 characters")
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
        ):
            raise ValidationFailed.field(f"{name}.{key}", "must be a finite number")
        out[key] = float(number)
    return out


def _slices(value: Any) -> dict[str, dict[str, float]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationFailed.field("slices", "must be an object of slice: {metric: number}")
    if len(value) > MAX_SLICES:
        raise ValidationFailed.field("slices", f"at most {MAX_SLICES} slices")
    out: dict[str, dict[str, float]] = {}
    for name, metrics in value.items():
        if not isinstance(name, str) or not name or len(name) > 128:
            raise ValidationFailed.field("slices", "slice names must be 1-128 characters")
        out[name] = _numbers(metrics, f"slices.{name}", required=True)
    return out


def _when(value: Any, now: datetime) -> datetime:
    if value is None:
        return now.replace(microsecond=0)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationFailed.field("evaluated_at", "must be an ISO 8601 time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationFailed.field("evaluated_at", "must be an ISO 8601 time with a zone")
    if value > now + _FUTURE_SLACK:
        raise ValidationFailed.field("evaluated_at", "is in the future")
    # UTC, so the record (and its digest) reads the same before and after the store.
    return value.astimezone(UTC).replace(microsecond=0)


def _dataset(value: Any) -> dict[str, Any] | None:
    """The evaluation data's fingerprint (``{sha256, rows, columns}``), checked as
    lineage fingerprints are but with errors naming ``dataset.<key>``."""
    if value is None:
        return None
    try:
        return check_fingerprint("dataset", value)
    except ValidationFailed as exc:
        details = [
            {**d, "field": str(d.get("field", "")).removeprefix("lineage.")} for d in exc.details
        ]
        first = details[0] if details else {"field": "dataset", "reason": exc.message}
        raise ValidationFailed(f"{first['field']}: {first['reason']}", details=details) from None


def _record(row: Any) -> EvaluationRecord:
    data = row._asdict()
    return EvaluationRecord(**data)


class EvaluationService:
    def __init__(self, engine: Engine, versions: VersionService) -> None:
        self.engine = engine
        self.versions = versions

    def record(
        self,
        model: str,
        number: int,
        *,
        actor: Actor,
        metrics: Any,
        slices: Any = None,
        baseline: Any = None,
        dataset: Any = None,
        evaluated_at: Any = None,
    ) -> EvaluationRecord:
        """Append an evaluation record for version ``number``; it becomes the evidence
        (approvals bound to the previous evidence become stale)."""
        version = self.versions.get(model, number)
        if version.status == "retired":
            raise Conflict(f"version {number} of {model!r} is retired")
        now = utcnow()
        clean_metrics = _numbers(metrics, "metrics", required=True)
        clean_slices = _slices(slices)
        clean_baseline = _numbers(baseline, "baseline", required=False)
        clean_dataset = _dataset(dataset)
        when = _when(evaluated_at, now)
        row: dict[str, Any] = {
            "id": new_id(),
            "version_id": version.id,
            "model": model,
            "version": version.number,
            "metrics": clean_metrics,
            "slices": clean_slices,
            "baseline": clean_baseline,
            "dataset": clean_dataset,
            "evaluated_at": when,
            "digest": digest_of(clean_metrics, clean_slices, clean_baseline, clean_dataset, when),
            "created_by": actor.name,
            "created_at": now,
        }
        record = EvaluationRecord(**row)
        with transaction(self.engine) as conn:
            conn.execute(evaluations.insert().values(**row))
            append(
                conn,
                actor,
                "evaluation.record",
                target_kind="version",
                target=f"{model}/{version.number}",
                after=record.to_dict(),
            )
        return record

    def current(self, version: Version) -> EvaluationRecord | None:
        """The version's evidence: its newest record, else its lineage metrics, else None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(evaluations)
                .where(evaluations.c.version_id == version.id)
                .order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc())
                .limit(1)
            ).first()
        if row is not None:
            return _record(row)
        return derived_from_lineage(version)

    def history(self, model: str, number: int) -> list[EvaluationRecord]:
        """Every stored record of the version, newest first."""
        version = self.versions.get(model, number)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(evaluations)
                .where(evaluations.c.version_id == version.id)
                .order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc())
            ).all()
        return [_record(r) for r in rows]


def derived_from_lineage(version: Version) -> EvaluationRecord | None:
    """The evidence of a version registered with ``lineage.metrics`` and no record."""
    metrics = version.lineage.get("metrics") if isinstance(version.lineage, dict) else None
    if not metrics or version.created_at is None:
        return None
    clean = {k: float(v) for k, v in metrics.items()}
    dataset = version.lineage.get("evaluation_data")
    when = version.created_at.replace(microsecond=0)
    return EvaluationRecord(
        model=version.model,
        version=version.number,
        version_id=version.id,
        metrics=clean,
        dataset=dataset,
        evaluated_at=when,
        digest=digest_of(clean, {}, {}, dataset, when),
        created_by=version.created_by,
        created_at=version.created_at,
    )
