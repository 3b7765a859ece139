"""Delayed labels: ground truth joined to the predictions it judges, by prediction id.

A prediction id is ``<record id>-<row>`` (the record of the request, the row's position
in it), as every predict response returns. Submitting copies the prediction as answered
next to the label, so label metrics need no join at read time. Nothing is dropped
silently: every id is accepted, updated (a second label replaces the first), unknown
(no such prediction on this endpoint) or invalid (with the field and the reason).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, select, update

from slipway.audit import Actor, append
from slipway.errors import NotFound, ValidationFailed
from slipway.ids import utcnow
from slipway.monitoring.quality import classification_quality, regression_quality
from slipway.store.engine import transaction
from slipway.store.tables import feedback, prediction_records

MAX_ITEMS = 10_000
MAX_REASON = 2000
OVERRIDE = "override"  # feedback.source of a reviewer's correction
_CHUNK = 500  # ids per IN (...) query
_RECORD_COLUMNS = (
    prediction_records.c.id,
    prediction_records.c.model,
    prediction_records.c.version,
    prediction_records.c.created_at,
    prediction_records.c.outputs,
)


@dataclass(frozen=True)
class Labeled:
    """One prediction with its ground truth, as label metrics read it."""

    label: Any
    prediction: Any
    probabilities: list[float] | None
    classes: list[Any] | None
    predicted_at: datetime
    received_at: datetime


def quality_of(labeled: Sequence[Labeled], *, classifier: bool) -> dict[str, Any]:
    """Label metrics of ``labeled`` (non-empty): classification ones (probability-based
    metrics only when every prediction kept its probabilities), else regression ones."""
    truth = [x.label for x in labeled]
    predicted = [x.prediction for x in labeled]
    if not classifier:
        return regression_quality([float(t) for t in truth], [float(p) for p in predicted])
    complete = all(x.probabilities is not None for x in labeled)
    proba = np.asarray([x.probabilities for x in labeled], dtype=np.float64) if complete else None
    return classification_quality(truth, predicted, proba, labeled[0].classes)


def _parse_items(items: Any) -> tuple[list[tuple[int, str, Any]], list[dict[str, Any]]]:
    if not isinstance(items, list) or not items:
        raise ValidationFailed.field("items", "must be a non-empty list")
    if len(items) > MAX_ITEMS:
        raise ValidationFailed.field("items", f"at most {MAX_ITEMS:,} per request")
    good: list[tuple[int, str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            invalid.append({"index": i, "field": f"items[{i}]", "reason": "must be an object"})
            continue
        pid, label = item.get("prediction_id"), item.get("label")
        unknown_keys = sorted(set(item) - {"prediction_id", "label"})
        if unknown_keys:
            reason = f"unknown field(s): {', '.join(map(str, unknown_keys))}"
            invalid.append({"index": i, "field": f"items[{i}]", "reason": reason})
        elif not isinstance(pid, str) or not _split(pid):
            reason = "must be a prediction id as returned by predict (<record>-<row>)"
            invalid.append({"index": i, "field": f"items[{i}].prediction_id", "reason": reason})
        elif label is None or not isinstance(label, str | int | float | bool):
            reason = "required: a class label or a number"
            invalid.append({"index": i, "field": f"items[{i}].label", "reason": reason})
        elif isinstance(label, float) and not math.isfinite(label):
            reason = "must be a finite number"
            invalid.append({"index": i, "field": f"items[{i}].label", "reason": reason})
        else:
            good.append((i, pid, label))
    return good, invalid


def _split(prediction_id: str) -> tuple[str, int] | None:
    record, _, row = prediction_id.rpartition("-")
    if not record or not row.isdigit() or len(record) > 32:
        return None
    return record, int(row)


class FeedbackService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(
        self, endpoint: str, items: Any, *, actor: Actor, source: str = "feedback"
    ) -> dict[str, Any]:
        """Store labels for prediction ids of ``endpoint``; returns counts and the ids
        that were unknown or invalid."""
        good, invalid = _parse_items(items)
        now = utcnow()
        latest = {pid: label for _, pid, label in good}  # a repeated id: the last label wins
        records = self._records(endpoint, {_split(pid)[0] for pid in latest})  # type: ignore[index]
        rows, unknown = _joined(endpoint, latest, records, now=now, actor=actor, source=source)
        with transaction(self.engine) as conn:
            written, kept = self._write(conn, rows, now)
        return {
            "received": len(items),
            "accepted": len(rows) - len(written) - len(kept),
            "updated": len(written),
            # Ids a reviewer overrode: their corrected label stands; this one was not stored.
            "overridden": kept,
            "unknown": unknown,
            "invalid": invalid,
        }

    def override(
        self, prediction_id: str, label: Any, reason: Any, *, actor: Actor
    ) -> dict[str, Any]:
        """A reviewer's correction of one prediction: stored as its label (source
        ``override``, with the reason), so label metrics count it like any feedback, and
        audited as ``prediction.override`` in the same transaction. A second override
        replaces the first; a later plain label does not (submit reports it overridden).

        Unknown id: NotFound. Malformed id, missing label or reason, a row the model did
        not answer, or a shadow copy's answer: ValidationFailed naming the field."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationFailed.field("reason", "required: why the prediction is overridden")
        if len(reason) > MAX_REASON:
            raise ValidationFailed.field("reason", f"at most {MAX_REASON} characters")
        _, invalid = _parse_items([{"prediction_id": prediction_id, "label": label}])
        if invalid:
            raise ValidationFailed.field(
                invalid[0]["field"].removeprefix("items[0]."), invalid[0]["reason"]
            )
        record = self.record_of(prediction_id)
        if record.arm == "shadow":
            raise ValidationFailed.field(
                "prediction_id",
                f"{prediction_id} is a shadow copy's answer, which no caller received; "
                "override the prediction the caller got",
            )
        now = utcnow()
        rows, unknown = _joined(
            record.endpoint,
            {prediction_id: label},
            {record.id: record},
            now=now,
            actor=actor,
            source=OVERRIDE,
            reason=reason.strip(),
        )
        if unknown:
            raise ValidationFailed.field(
                "prediction_id",
                f"the model gave no answer for {prediction_id} (the row was refused by the "
                "contract, or the request has no such row): there is nothing to override",
            )
        row = rows[prediction_id]
        with transaction(self.engine) as conn:
            previous = self._write(conn, rows, now)[0].get(prediction_id)
            append(
                conn,
                actor,
                "prediction.override",
                target_kind="prediction",
                target=prediction_id,
                before={
                    "endpoint": row["endpoint"],
                    "model": row["model"],
                    "version": row["version"],
                    "prediction": row["prediction"],
                    "label": previous.label if previous is not None else None,
                    "label_source": previous.source if previous is not None else None,
                },
                after={"label": label, "source": OVERRIDE},
                reason=row["reason"],
            )
        return {
            "prediction_id": prediction_id,
            "record_id": row["record_id"],
            "endpoint": row["endpoint"],
            "model": row["model"],
            "version": row["version"],
            "prediction": row["prediction"],
            "label": label,
            "previous_label": previous.label if previous is not None else None,
            "reason": row["reason"],
            "by": actor.name,
            "at": now.isoformat(),
        }

    def record_of(self, prediction_id: str) -> Any:
        """The record that answered ``prediction_id`` (``<record>-<row>``): id, endpoint,
        model, version, created_at, outputs and arm. NotFound naming the id if none."""
        parsed = _split(prediction_id) if isinstance(prediction_id, str) else None
        if parsed is None:
            raise ValidationFailed.field(
                "prediction_id", "must be a prediction id as returned by predict (<record>-<row>)"
            )
        query = select(*_RECORD_COLUMNS, prediction_records.c.endpoint, prediction_records.c.arm)
        with self.engine.connect() as conn:
            record = conn.execute(query.where(prediction_records.c.id == parsed[0])).first()
        if record is None:
            raise NotFound(f"prediction {prediction_id!r} not found")
        return record

    def overrides_of(self, record_id: str) -> list[dict[str, Any]]:
        """The overrides of the rows of record ``record_id``, in row order."""
        query = select(
            feedback.c.prediction_id,
            feedback.c.label,
            feedback.c.reason,
            feedback.c.created_by,
            feedback.c.received_at,
        ).where(feedback.c.record_id == record_id, feedback.c.source == OVERRIDE)
        with self.engine.connect() as conn:
            found = list(conn.execute(query))
        found.sort(key=lambda r: _split(r.prediction_id) or (r.prediction_id, 0))
        return [
            {
                "prediction_id": r.prediction_id,
                "label": r.label,
                "reason": r.reason,
                "by": r.created_by,
                "at": r.received_at.isoformat(),
            }
            for r in found
        ]

    @staticmethod
    def _write(
        conn: Connection, rows: Mapping[str, dict[str, Any]], now: datetime
    ) -> tuple[dict[str, Any], list[str]]:
        """Insert ``rows`` (one per prediction id), replacing the label of ids that have
        one already — except that plain feedback never replaces a reviewer's override (a
        person's correction stands). Returns the replaced rows (label, source) by
        prediction id, and the ids whose override was kept."""
        existing: dict[str, Any] = {}
        ids = list(rows)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = select(feedback.c.prediction_id, feedback.c.label, feedback.c.source).where(
                feedback.c.prediction_id.in_(chunk)
            )
            existing.update({r.prediction_id: r for r in conn.execute(query)})
        kept = [
            pid
            for pid, old in existing.items()
            if old.source == OVERRIDE and rows[pid]["source"] != OVERRIDE
        ]
        replaced = {pid: old for pid, old in existing.items() if pid not in kept}
        for pid in replaced:
            row = rows[pid]
            conn.execute(
                update(feedback)
                .where(feedback.c.prediction_id == pid)
                .values(
                    label=row["label"],
                    received_at=now,
                    source=row["source"],
                    created_by=row["created_by"],
                    reason=row["reason"],
                )
            )
        fresh = [row for pid, row in rows.items() if pid not in existing]
        if fresh:
            conn.execute(feedback.insert(), fresh)
        return replaced, kept

    def _records(self, endpoint: str, record_ids: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ids = sorted(record_ids)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(*_RECORD_COLUMNS).where(
                    prediction_records.c.id.in_(ids[start : start + _CHUNK]),
                    prediction_records.c.endpoint == endpoint,
                )
                out.update({r.id: r for r in conn.execute(query)})
        return out

    def labeled(
        self,
        endpoint: str,
        start: datetime,
        end: datetime,
        *,
        version: int | None = None,
        limit: int = 100_000,
    ) -> list[Labeled]:
        """Labeled predictions made in ``[start, end)``, newest first, at most ``limit``."""
        query = (
            select(
                feedback.c.label,
                feedback.c.prediction,
                feedback.c.probabilities,
                feedback.c.classes,
                feedback.c.predicted_at,
                feedback.c.received_at,
            )
            .where(
                feedback.c.endpoint == endpoint,
                feedback.c.predicted_at >= start,
                feedback.c.predicted_at < end,
            )
            .order_by(feedback.c.predicted_at.desc())
            .limit(limit)
        )
        if version is not None:
            query = query.where(feedback.c.version == version)
        with self.engine.connect() as conn:
            return [Labeled(*row) for row in conn.execute(query)]


def _joined(
    endpoint: str,
    labels: Mapping[str, Any],
    records: Mapping[str, Any],
    *,
    now: datetime,
    actor: Actor,
    source: str,
    reason: str | None = None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Feedback rows for ``labels`` ({prediction id: label}), each joined to the answer
    its record (in ``records``, by id) gave; and the ids with no answer to judge."""
    rows: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for pid, label in labels.items():
        record_id, row = _split(pid)  # type: ignore[misc]
        record = records.get(record_id)
        answered = _answered(record, row) if record is not None else None
        if record is None or answered is None:
            unknown.append(pid)
            continue
        prediction, probabilities, classes = answered
        rows[pid] = {
            "prediction_id": pid,
            "record_id": record_id,
            "endpoint": endpoint,
            "model": record.model,
            "version": record.version,
            "predicted_at": record.created_at,
            "received_at": now,
            "label": label,
            "prediction": prediction,
            "probabilities": probabilities,
            "classes": classes,
            "source": source,
            "created_by": actor.name,
            "reason": reason,
        }
    return rows, unknown


def _answered(record: Any, row: int) -> tuple[Any, list[float] | None, list[Any] | None] | None:
    """The prediction ``record`` gave for request row ``row``, or None if it gave none
    (the row was refused, or there is no such row)."""
    outputs: Mapping[str, Any] = record.outputs
    predictions: Sequence[Any] = outputs.get("predictions", [])
    row_index: Sequence[int] | None = outputs.get("row_index")
    if row_index is None:
        position = row if 0 <= row < len(predictions) else None
    else:
        position = row_index.index(row) if row in row_index else None
    if position is None:
        return None
    proba = outputs.get("probabilities")
    return (
        predictions[position],
        proba[position] if proba is not None else None,
        outputs.get("classes"),
    )
