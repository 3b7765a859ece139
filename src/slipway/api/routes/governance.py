"""Model cards, the ML Test Score and its attestations, periodic reviews, the inventory.

A card is generated from the records on every request; there is no route to write one.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import PROTECTED, errors
from slipway.api.routes.versions import VERSION_NUMBER
from slipway.governance.card import to_html, to_markdown
from slipway.governance.inventory import to_csv
from slipway.governance.statements import MAX_CHARS
from slipway.governance.testscore import MAX_URL

router = APIRouter(prefix="/api/v1", tags=["governance"], responses=PROTECTED)

CardFormat = Literal["json", "markdown", "html"]
InventoryFormat = Literal["json", "csv"]


def _text_responses(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: the 200 answer may also come as these text types (chosen by ``format``)."""
    return {
        200: {
            "description": "JSON, or the text form asked for with ``format``",
            "content": {t: {"schema": {"type": "string"}} for t in media_types},
        }
    }


class AttestationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    test: str = Field(min_length=1, max_length=16, description="e.g. data-2 (see test-score)")
    evidence_url: str = Field(min_length=1, max_length=MAX_URL)
    note: str = Field(min_length=1, max_length=MAX_CHARS)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notes: str = Field(min_length=1, max_length=MAX_CHARS)


# -- the model card ------------------------------------------------------------------------


@router.get(
    "/models/{name}/versions/{number}/card",
    response_model=None,
    responses={**_text_responses("text/markdown", "text/html"), **errors(404)},
)
async def model_card(
    name: str,
    request: Request,
    number: int = VERSION_NUMBER,
    format: CardFormat = Query(default="json", description="json, markdown or html"),
    principal: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any] | Response:
    """The version's model card, generated from the records (owners, lineage, the
    evaluation record as stored, contract, approvals, deployments, monitoring, test
    score). An endpoint's live monitoring shows only to readers of its monitoring."""

    def shows_monitoring(endpoint: str) -> bool:
        return principal.can(Permission.MONITOR_READ, endpoint)

    card = await run_in_threadpool(
        lambda: runtime_of(request).cards.card(name, number, shows_monitoring=shows_monitoring)
    )
    if format == "markdown":
        return Response(to_markdown(card), media_type="text/markdown; charset=utf-8")
    if format == "html":
        return HTMLResponse(to_html(card))
    return card


# -- the ML Test Score ---------------------------------------------------------------------


@router.get("/models/{name}/test-score", responses=errors(404))
async def test_score(
    name: str, request: Request, _: Principal = Depends(require(Permission.MODEL_READ))
) -> dict[str, Any]:
    """The model's ML Test Score: each test with its points, how it was established
    (automated, attested, none) and the evidence; section sums, final score, band."""
    score: dict[str, Any] = await run_in_threadpool(runtime_of(request).test_scores.score, name)
    return score


@router.post(
    "/models/{name}/test-score/attestations", status_code=201, responses=errors(400, 404, 409)
)
async def attest(
    name: str,
    body: AttestationBody,
    request: Request,
    _: Principal = Depends(require(Permission.TESTSCORE_ATTEST)),
) -> dict[str, Any]:
    """Vouch for a test slipway cannot check itself (0.5 points), with a link to the
    evidence and a note; the newest attestation of a test counts."""
    found = await run_in_threadpool(
        runtime_of(request).test_scores.attest,
        name,
        body.test,
        evidence_url=body.evidence_url,
        note=body.note,
        actor=actor_of(request),
    )
    return found.to_dict()


@router.delete("/models/{name}/test-score/attestations/{test}", responses=errors(404))
async def withdraw_attestation(
    name: str,
    test: str,
    request: Request,
    _: Principal = Depends(require(Permission.TESTSCORE_ATTEST)),
) -> dict[str, Any]:
    """Withdraw the standing attestation of ``test``: it no longer counts."""
    withdrawn = await run_in_threadpool(
        runtime_of(request).test_scores.withdraw, name, test, actor=actor_of(request)
    )
    return {"withdrawn": [a.to_dict() for a in withdrawn]}


# -- periodic reviews ----------------------------------------------------------------------


@router.post("/models/{name}/reviews", status_code=201, responses=errors(400, 404, 409))
async def review_model(
    name: str,
    body: ReviewBody,
    request: Request,
    _: Principal = Depends(require(Permission.APPROVAL_DECIDE)),
) -> dict[str, Any]:
    """Record a periodic review of the model; the next one is due an interval (by risk
    tier) later."""
    found = await run_in_threadpool(
        runtime_of(request).inventory.review, name, notes=body.notes, actor=actor_of(request)
    )
    return found.to_dict()


@router.get("/models/{name}/reviews", responses=errors(404))
async def list_reviews(
    name: str, request: Request, _: Principal = Depends(require(Permission.MODEL_READ))
) -> dict[str, Any]:
    found = await run_in_threadpool(runtime_of(request).inventory.reviews, name)
    return {"reviews": [r.to_dict() for r in found]}


# -- the inventory -------------------------------------------------------------------------


@router.get("/inventory", response_model=None, responses=_text_responses("text/csv"))
async def inventory(
    request: Request,
    format: InventoryFormat = Query(default="json", description="json or csv"),
    name: str | None = Query(default=None, max_length=128, description="names containing"),
    tag: str | None = Query(default=None, max_length=128),
    owner: str | None = Query(default=None, max_length=256),
    status: str | None = Query(default=None, max_length=16),
    principal: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any] | Response:
    """Every model the caller may read: owner, risk tier, where it serves, last and next
    review (overdue or not), ML Test Score, legal hold."""
    rows = await run_in_threadpool(
        runtime_of(request).inventory.inventory,
        visible=lambda model: principal.can(Permission.MODEL_READ, model),
        name=name,
        tag=tag,
        owner=owner,
        status=status,
    )
    if format == "csv":
        return Response(to_csv(rows), media_type="text/csv; charset=utf-8")
    return {"models": rows}
