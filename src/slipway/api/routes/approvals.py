"""Evaluation records of a version, and approvals: the request, the queue, the decision.

An approval is bound to the version's evidence (artifact, contract, evaluation record);
the queue shows for each whether it still is (``valid``) and what changed since
(``stale_because``). Whoever registered a version cannot decide on its approval.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, authorize_target, require, runtime_of
from slipway.api.routes import MAX_INT32, PROTECTED, errors
from slipway.api.routes.versions import VERSION_NUMBER
from slipway.errors import ValidationFailed
from slipway.governance.approvals import Approval, Binding
from slipway.governance.statements import MAX_CHARS
from slipway.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["approvals"], responses=PROTECTED)

ApprovalState = Literal["pending", "approved", "rejected", "superseded"]


class EvaluationBody(BaseModel):
    """The service checks the contents and names the offending field
    (``metrics.auc``, ``slices.eu.auc``, ``dataset.sha256``...)."""

    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, Any]
    slices: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    evaluated_at: str | None = Field(default=None, max_length=64)


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=MAX_CHARS)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rationale: str = Field(min_length=1, max_length=MAX_CHARS)


def _shown(runtime: Runtime, found: list[Approval]) -> list[dict[str, Any]]:
    """Each approval with ``valid``/``stale_because`` against its version's evidence as
    it is now (looked up once per version)."""
    bindings: dict[str, Binding] = {}
    out = []
    for approval in found:
        if approval.version_id not in bindings:
            version = runtime.versions.get_by_id(approval.version_id)
            bindings[approval.version_id] = runtime.approvals.binding_of(version)
        out.append(approval.to_dict(bindings[approval.version_id]))
    return out


# -- evaluation records ------------------------------------------------------------------


@router.post(
    "/models/{name}/versions/{number}/evaluations",
    status_code=201,
    responses=errors(400, 404, 409),
)
async def record_evaluation(
    name: str,
    body: EvaluationBody,
    request: Request,
    number: int = VERSION_NUMBER,
    _: Principal = Depends(require(Permission.VERSION_REGISTER)),
) -> dict[str, Any]:
    """Append an evaluation record; it becomes the version's evidence, so approvals
    bound to the previous evidence become stale."""
    record = await run_in_threadpool(
        runtime_of(request).evaluations.record,
        name,
        number,
        actor=actor_of(request),
        metrics=body.metrics,
        slices=body.slices,
        baseline=body.baseline,
        dataset=body.dataset,
        evaluated_at=body.evaluated_at,
    )
    return record.to_dict()


@router.get("/models/{name}/versions/{number}/evaluations", responses=errors(404))
async def list_evaluations(
    name: str,
    request: Request,
    number: int = VERSION_NUMBER,
    _: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    """The version's evidence (``current``: the newest record, or the metrics it was
    registered with) and every stored record, newest first."""
    runtime = runtime_of(request)

    def load() -> dict[str, Any]:
        version = runtime.versions.get(name, number)
        current = runtime.evaluations.current(version)
        history = runtime.evaluations.history(name, number)
        return {
            "current": current.to_dict() if current is not None else None,
            "history": [r.to_dict() for r in history],
        }

    return await run_in_threadpool(load)


# -- approvals ---------------------------------------------------------------------------


@router.post(
    "/models/{name}/versions/{number}/approvals",
    status_code=201,
    responses=errors(400, 404, 409),
)
async def request_approval(
    name: str,
    request: Request,
    body: ApprovalRequest | None = None,
    number: int = VERSION_NUMBER,
    _: Principal = Depends(require(Permission.APPROVAL_REQUEST)),
) -> dict[str, Any]:
    """Ask for an approval of a ready version (one pending request per version)."""
    runtime = runtime_of(request)

    def create() -> dict[str, Any]:
        approval = runtime.approvals.request(
            name, number, actor=actor_of(request), note=body.note if body else ""
        )
        return _shown(runtime, [approval])[0]

    return await run_in_threadpool(create)


@router.get("/approvals")
async def list_approvals(
    request: Request,
    model: str | None = Query(default=None, max_length=128),
    version: int | None = Query(default=None, ge=1, le=MAX_INT32),
    state: ApprovalState | None = None,
    limit: int = Query(default=500, ge=1, le=1000),
    principal: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    """The approval queue (``state=pending``) or history, newest request first; only
    approvals of models the caller may read."""
    runtime = runtime_of(request)

    def load() -> list[dict[str, Any]]:
        # Filter before the limit, so a model-scoped reader still gets its newest ones
        # (approvals are few: people make them).
        found = runtime.approvals.list(model=model, version=version, state=state, limit=None)
        visible = [a for a in found if principal.can(Permission.MODEL_READ, a.model)]
        return _shown(runtime, visible[:limit])

    return {"approvals": await run_in_threadpool(load)}


@router.get("/approvals/{approval_id}", responses=errors(404))
async def show_approval(
    approval_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    approval = await run_in_threadpool(runtime.approvals.get, approval_id)
    # The model is known only now: a model-scoped reader sees its own approvals only.
    await authorize_target(request, principal, Permission.MODEL_READ, approval.model)
    return (await run_in_threadpool(_shown, runtime, [approval]))[0]


async def _decide(
    request: Request,
    principal: Principal,
    approval_id: str,
    body: Decision | None,
    *,
    approve: bool,
) -> dict[str, Any]:
    if body is None:
        raise ValidationFailed.field("rationale", "is required: say why")
    rationale = body.rationale
    runtime = runtime_of(request)
    approval = await run_in_threadpool(runtime.approvals.get, approval_id)
    await authorize_target(request, principal, Permission.APPROVAL_DECIDE, approval.model)
    # What a policy's role rule counts: the roles the decider holds on this model.
    roles = [
        g.role for g in principal.grants if g.covers(Permission.APPROVAL_DECIDE, approval.model)
    ]

    def decide() -> dict[str, Any]:
        decided = runtime.approvals.decide(
            approval_id,
            approve=approve,
            rationale=rationale,
            actor=actor_of(request),
            roles=roles,
        )
        return _shown(runtime, [decided])[0]

    return await run_in_threadpool(decide)


@router.post("/approvals/{approval_id}/approve", responses=errors(400, 404, 409))
async def approve(
    approval_id: str,
    request: Request,
    body: Decision | None = None,
    principal: Principal = Depends(require(Permission.APPROVAL_DECIDE)),
) -> dict[str, Any]:
    """Approve a pending request, bound to the evidence it was requested on (409, and
    the request superseded, if that changed). ``rationale`` is required; the version's
    registrant is refused (403)."""
    return await _decide(request, principal, approval_id, body, approve=True)


@router.post("/approvals/{approval_id}/reject", responses=errors(400, 404, 409))
async def reject(
    approval_id: str,
    request: Request,
    body: Decision | None = None,
    principal: Principal = Depends(require(Permission.APPROVAL_DECIDE)),
) -> dict[str, Any]:
    """Reject a pending request; ``rationale`` is required."""
    return await _decide(request, principal, approval_id, body, approve=False)
