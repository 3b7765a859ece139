"""/api/v1/principals, /api/v1/tokens, /api/v1/grants: who may do what (admin only)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import MAX_INT32, MAX_SECONDS, PROTECTED, errors

router = APIRouter(prefix="/api/v1", tags=["access"], responses=PROTECTED)
MANAGE = Depends(require(Permission.PRINCIPAL_MANAGE))


class PrincipalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["user", "service"] = "user"
    owner: str = ""


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=128)
    scopes: list[str] = []
    expires_in_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    rate_limit_rps: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_INT32)


class TokenRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_s: float = Field(default=3600.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False)


class TokenRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = ""


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=32)
    scope_kind: Literal["global", "model", "endpoint"] = "global"
    scope_name: str | None = Field(default=None, max_length=128)


@router.post("/principals", status_code=201, responses=errors(400, 409))
async def create_principal(
    body: PrincipalCreate, request: Request, _: Principal = MANAGE
) -> dict[str, Any]:
    return await run_in_threadpool(
        runtime_of(request).principals.create,
        body.name,
        kind=body.kind,
        owner=body.owner,
        actor=actor_of(request),
    )


@router.get("/principals")
async def list_principals(request: Request, _: Principal = MANAGE) -> dict[str, Any]:
    return {"principals": await run_in_threadpool(runtime_of(request).principals.list)}


@router.get("/principals/{principal}", responses=errors(404))
async def show_principal(principal: str, request: Request, _: Principal = MANAGE) -> dict[str, Any]:
    return await run_in_threadpool(runtime_of(request).principals.get, principal)


@router.post("/principals/{principal}/disable", responses=errors(404, 409))
async def disable_principal(
    principal: str, request: Request, _: Principal = MANAGE
) -> dict[str, Any]:
    return await run_in_threadpool(
        runtime_of(request).principals.set_disabled, principal, True, actor=actor_of(request)
    )


@router.post("/principals/{principal}/enable", responses=errors(404, 409))
async def enable_principal(
    principal: str, request: Request, _: Principal = MANAGE
) -> dict[str, Any]:
    return await run_in_threadpool(
        runtime_of(request).principals.set_disabled, principal, False, actor=actor_of(request)
    )


@router.post("/tokens", status_code=201, responses=errors(400, 404, 409))
async def create_token(
    body: TokenCreate, request: Request, _: Principal = MANAGE
) -> dict[str, Any]:
    secret, view = await run_in_threadpool(
        runtime_of(request).tokens.issue,
        body.principal,
        actor=actor_of(request),
        name=body.name,
        scopes=body.scopes,
        expires_in_s=body.expires_in_s,
        rate_limit_rps=body.rate_limit_rps,
        max_concurrent=body.max_concurrent,
    )
    return {**view, "token": secret}


@router.get("/tokens", responses=errors(404))
async def list_tokens(
    request: Request, principal: str | None = None, _: Principal = MANAGE
) -> dict[str, Any]:
    return {"tokens": await run_in_threadpool(runtime_of(request).tokens.list, principal)}


@router.post("/tokens/{token_id}/revoke", responses=errors(400, 404, 409))
async def revoke_token(
    token_id: str, request: Request, body: TokenRevoke | None = None, _: Principal = MANAGE
) -> dict[str, Any]:
    return await run_in_threadpool(
        runtime_of(request).tokens.revoke,
        token_id,
        actor=actor_of(request),
        reason=body.reason if body else "",
    )


@router.post("/tokens/{token_id}/rotate", status_code=201, responses=errors(400, 404, 409))
async def rotate_token(
    token_id: str, request: Request, body: TokenRotate | None = None, _: Principal = MANAGE
) -> dict[str, Any]:
    overlap = body.overlap_s if body else 3600.0
    secret, view = await run_in_threadpool(
        runtime_of(request).tokens.rotate, token_id, actor=actor_of(request), overlap_s=overlap
    )
    return {**view, "token": secret}


@router.post("/grants", status_code=201, responses=errors(400, 404, 409))
async def create_grant(
    body: GrantCreate, request: Request, _: Principal = MANAGE
) -> dict[str, Any]:
    return await run_in_threadpool(
        runtime_of(request).principals.grant,
        body.principal,
        body.role,
        actor=actor_of(request),
        scope_kind=body.scope_kind,
        scope_name=body.scope_name,
    )


@router.get("/grants", responses=errors(404))
async def list_grants(
    request: Request, principal: str | None = None, _: Principal = MANAGE
) -> dict[str, Any]:
    return {
        "grants": await run_in_threadpool(runtime_of(request).principals.list_grants, principal)
    }


@router.post("/grants/{grant_id}/revoke", responses=errors(404, 409))
async def revoke_grant(grant_id: str, request: Request, _: Principal = MANAGE) -> dict[str, Any]:
    return await run_in_threadpool(
        runtime_of(request).principals.revoke_grant, grant_id, actor=actor_of(request)
    )
