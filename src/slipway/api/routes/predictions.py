"""/api/v1/predictions: read prediction records back (by id, or per endpoint), and a
reviewer's override of one prediction."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, authorize_target, require, runtime_of
from slipway.api.routes import PROTECTED, errors
from slipway.errors import NotFound
from slipway.monitoring.feedback import MAX_REASON
from slipway.store.tables import prediction_records

router = APIRouter(prefix="/api/v1", tags=["predictions"], responses=PROTECTED)


class Override(BaseModel):
    """The correct answer and why; the service names a missing or malformed one."""

    model_config = ConfigDict(extra="forbid")
    label: Any = Field(description="The class (or number) the prediction should have been.")
    reason: str = Field(default="", max_length=MAX_REASON)


def _record(row: Any) -> dict[str, Any]:
    data = dict(row._asdict())
    data["created_at"] = data["created_at"].isoformat()
    return data


@router.get("/predictions/{record_id}", responses=errors(404))
async def show_prediction(
    record_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.PREDICTION_READ)),
) -> dict[str, Any]:
    # A per-row prediction id is "<record id>-<row>": either form finds the record.
    base = record_id.rsplit("-", 1)[0] if "-" in record_id else record_id
    engine = runtime_of(request).engine

    def load() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                select(prediction_records).where(prediction_records.c.id == base)
            ).first()

    row = await run_in_threadpool(load)
    if row is None:
        raise NotFound(f"prediction {record_id!r} not found")
    # The endpoint is known only now: an endpoint-scoped reader sees its own records only.
    await authorize_target(request, principal, Permission.PREDICTION_READ, row.endpoint)
    overrides = await run_in_threadpool(runtime_of(request).feedback.overrides_of, base)
    return {**_record(row), "overrides": overrides}


@router.post("/predictions/{prediction_id}/override", responses=errors(400, 404))
async def override_prediction(
    prediction_id: str,
    body: Override,
    request: Request,
    principal: Principal = Depends(require(Permission.PREDICTION_OVERRIDE)),
) -> dict[str, Any]:
    """Record a reviewer's correction of one prediction (``<record>-<row>`` as predict
    returned it): audited, shown with the prediction, and counted as its label."""
    feedback = runtime_of(request).feedback
    record = await run_in_threadpool(feedback.record_of, prediction_id)
    # As for reads: an endpoint-scoped reviewer overrides its own endpoint's answers only.
    await authorize_target(request, principal, Permission.PREDICTION_OVERRIDE, record.endpoint)
    return await run_in_threadpool(
        feedback.override, prediction_id, body.label, body.reason, actor=actor_of(request)
    )


@router.get("/endpoints/{endpoint}/predictions", responses=errors(404))
async def list_predictions(
    endpoint: str,
    request: Request,
    limit: int = Query(default=100, ge=0, le=1000),
    _: Principal = Depends(require(Permission.PREDICTION_READ)),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    await run_in_threadpool(runtime.endpoints.get, endpoint)  # 404 for an unknown endpoint
    engine = runtime.engine

    def load() -> tuple[int, list[Any]]:
        where = prediction_records.c.endpoint == endpoint
        with engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(prediction_records).where(where)
            ).scalar_one()
            rows = conn.execute(
                select(prediction_records)
                .where(where)
                .order_by(prediction_records.c.created_at.desc())
                .limit(limit)
            ).all()
        return int(total), list(rows)

    total, rows = await run_in_threadpool(load)
    return {"endpoint": endpoint, "total": total, "records": [_record(r) for r in rows]}
