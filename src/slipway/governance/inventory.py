"""The model inventory and its periodic reviews.

One row per model: who owns it, its risk tier, where it serves, its newest version, when
it was last reviewed and when it is due again, whether that is overdue, its ML Test
Score and whether it is under legal hold. Exported as JSON or CSV (one row per model,
lists joined with "; ").

A review is a person (an approver of the model) looking at it again and writing down
what they found. The last review is the newest of a recorded review and an approval
decided in favour of any version of the model (deciding an approval is a review). The
next review is due :data:`REVIEW_INTERVAL_DAYS` after the last (by risk tier), or after
the model was created when it was never reviewed. The intervals are constants here, not
settings, until they need to differ per installation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from slipway.audit import Actor, append
from slipway.errors import Conflict
from slipway.governance.statements import statement
from slipway.governance.testscore import TestScoreService
from slipway.ids import new_id, utcnow
from slipway.registry.models import Model, ModelService
from slipway.serving.endpoints import Endpoint, EndpointService
from slipway.store.engine import transaction
from slipway.store.tables import approvals, reviews, versions

REVIEW_INTERVAL_DAYS = {"high": 90, "medium": 180, "low": 365}
COLUMNS = (
    "name",
    "owner",
    "oncall",
    "risk_tier",
    "status",
    "tags",
    "deployed",
    "latest_version",
    "last_review",
    "last_review_by",
    "next_review",
    "overdue",
    "test_score",
    "band",
    "legal_hold",
)


@dataclass(frozen=True)
class Review:
    id: str
    model: str
    reviewer: str
    notes: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "reviewer": self.reviewer,
            "notes": self.notes,
            "created_at": self.created_at.isoformat(),
        }


def next_review(risk_tier: str, last: datetime | None, created_at: datetime) -> datetime:
    """When the model is due for review: its interval after the last review (or after
    it was created); an unknown tier gets the strictest interval."""
    days = REVIEW_INTERVAL_DAYS.get(risk_tier, min(REVIEW_INTERVAL_DAYS.values()))
    return (last or created_at) + timedelta(days=days)


def deployed(endpoints: Sequence[Endpoint], model: str) -> list[str]:
    """Where ``model`` serves, as ``"endpoint (vN, role)"``."""
    # A fallback answers only while the endpoint is stopped: not listed as deployed.
    return [
        f"{ep.name} (v{number}, {role})"
        for ep in endpoints
        if ep.model == model
        for number, role, _ in ep.arms()
        if role != "fallback"
    ]


class InventoryService:
    def __init__(
        self,
        engine: Engine,
        models: ModelService,
        endpoints: EndpointService,
        test_scores: TestScoreService,
    ) -> None:
        self.engine = engine
        self.models = models
        self.endpoints = endpoints
        self.test_scores = test_scores

    # -- reviews ------------------------------------------------------------------------
    def review(self, model: str, *, notes: str, actor: Actor) -> Review:
        """Record a periodic review of ``model``; the next one is due an interval later."""
        text = statement(notes, "notes", asks="say what the review found")
        if self.models.get(model).status == "retired":
            raise Conflict(f"model {model!r} is retired")
        found = Review(new_id(), model, actor.name, text, utcnow())
        with transaction(self.engine) as conn:
            conn.execute(reviews.insert().values(**asdict(found)))
            append(
                conn,
                actor,
                "model.review",
                target_kind="model",
                target=model,
                after=found.to_dict(),
                reason=found.notes,
            )
        return found

    def reviews(self, model: str) -> list[Review]:
        """The model's reviews, newest first."""
        self.models.get(model)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(reviews)
                .where(reviews.c.model == model)
                .order_by(reviews.c.created_at.desc(), reviews.c.id.desc())
            ).all()
        return [Review(**r._asdict()) for r in rows]

    def last_reviews(self) -> dict[str, tuple[datetime, str]]:
        """Per model: when it was last reviewed and by whom (a review, or an approval
        decided in favour of one of its versions, whichever is newer)."""
        newest_review = (
            select(reviews.c.model, func.max(reviews.c.created_at).label("at"))
            .group_by(reviews.c.model)
            .subquery()
        )
        newest_approval = (
            select(approvals.c.model, func.max(approvals.c.decided_at).label("at"))
            .where(approvals.c.state == "approved")
            .group_by(approvals.c.model)
            .subquery()
        )
        out: dict[str, tuple[datetime, str]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(
                select(reviews.c.model, reviews.c.created_at, reviews.c.reviewer).join(
                    newest_review,
                    (newest_review.c.model == reviews.c.model)
                    & (newest_review.c.at == reviews.c.created_at),
                )
            ):
                out[row.model] = (row.created_at, row.reviewer)
            for row in conn.execute(
                select(approvals.c.model, approvals.c.decided_at, approvals.c.decided_by).join(
                    newest_approval,
                    (newest_approval.c.model == approvals.c.model)
                    & (newest_approval.c.at == approvals.c.decided_at),
                )
            ):
                if row.model not in out or row.decided_at > out[row.model][0]:
                    out[row.model] = (row.decided_at, f"{row.decided_by} (approval)")
        return out

    # -- the inventory ------------------------------------------------------------------
    def inventory(
        self,
        *,
        now: datetime | None = None,
        visible: Callable[[str], bool] | None = None,
        name: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """One row per model (filtered like ``models.list``; ``visible``: only the models
        the caller may read), by name."""
        now = now or utcnow()
        found = [
            m
            for m in self.models.list(name=name, tag=tag, owner=owner, status=status)
            if visible is None or visible(m.name)
        ]
        if not found:
            return []
        all_endpoints = self.endpoints.list()
        last = self.last_reviews()
        latest = self._latest_versions()
        return [self._row(m, now, all_endpoints, last.get(m.name), latest) for m in found]

    def _row(
        self,
        m: Model,
        now: datetime,
        all_endpoints: Sequence[Endpoint],
        last: tuple[datetime, str] | None,
        latest: dict[str, int],
    ) -> dict[str, Any]:
        assert m.created_at is not None
        due = next_review(m.risk_tier, last[0] if last else None, m.created_at)
        score = self.test_scores.score(m.name, all_endpoints=all_endpoints)
        return {
            "name": m.name,
            "owner": m.owner,
            "oncall": m.oncall,
            "risk_tier": m.risk_tier,
            "status": m.status,
            "tags": list(m.tags),
            "deployed": deployed(all_endpoints, m.name),
            "latest_version": latest.get(m.id),
            "last_review": last[0].isoformat() if last else None,
            "last_review_by": last[1] if last else None,
            "next_review": due.isoformat(),
            "overdue": now > due,
            "test_score": score["final"],
            "band": score["band"],
            "legal_hold": m.legal_hold_at is not None,
        }

    def _latest_versions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(versions.c.model_id, func.max(versions.c.number).label("number")).group_by(
                    versions.c.model_id
                )
            ).all()
        return {r.model_id: int(r.number) for r in rows}


# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        text = "; ".join(str(v) for v in value)
    else:
        text = str(value)
    # Owners, tags and names are typed by people: never let a spreadsheet run them.
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The inventory as CSV: a header, then one row per model."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    return out.getvalue()
