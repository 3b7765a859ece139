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
from sqlalchemy import Engine, select, update

from slipway.audit import Actor
from slipway.errors import ValidationFailed
from slipway.ids import utcnow
from slipway.monitoring.quality import classification_quality, regression_quality
from slipway.store.engine import transaction
from slipway.store.tables import feedback, prediction_records

MAX_ITEMS = 10_000
_CHUNK = 500  # ids per IN (...) query


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
        rows: dict[str, dict[str, Any]] = {}
        unknown: list[str] = []
        for pid, label in latest.items():
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
            }
        updated = 0
        with transaction(self.engine) as conn:
            existing: set[str] = set()
            ids = list(rows)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                existing.update(
                    conn.execute(
                        select(feedback.c.prediction_id).where(feedback.c.prediction_id.in_(chunk))
                    ).scalars()
                )
            for pid in existing:
                row = rows[pid]
                conn.execute(
                    update(feedback)
                    .where(feedback.c.prediction_id == pid)
                    .values(
                        label=row["label"],
                        received_at=now,
                        source=source,
                        created_by=actor.name,
                    )
                )
            updated = len(existing)
            fresh = [row for pid, row in rows.items() if pid not in existing]
            if fresh:
                conn.execute(feedback.insert(), fresh)
        return {
            "received": len(items),
            "accepted": len(rows) - updated,
            "updated": updated,
            "unknown": unknown,
            "invalid": invalid,
        }

    def _records(self, endpoint: str, record_ids: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ids = sorted(record_ids)
        cols = (
            prediction_records.c.id,
            prediction_records.c.model,
            prediction_records.c.version,
            prediction_records.c.created_at,
            prediction_records.c.outputs,
        )
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(*cols).where(
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
