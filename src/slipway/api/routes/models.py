"""/api/v1/models: the model inventory."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import PROTECTED, errors

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=PROTECTED)


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    owner: str = Field(min_length=1, max_length=256)
    description: str = ""
    oncall: str = ""
    runbook_url: str = ""
    risk_tier: Literal["low", "medium", "high"] = "medium"
    intended_use: str = ""
    limitations: str = ""
    tags: list[str] = []


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = None
    oncall: str | None = None
    runbook_url: str | None = None
    risk_tier: Literal["low", "medium", "high"] | None = None
    intended_use: str | None = None
    limitations: str | None = None
    tags: list[str] | None = None
    status: Literal["active", "deprecated"] | None = None


@router.post("", status_code=201, responses=errors(400, 409))
async def create_model(
    body: ModelCreate,
    request: Request,
    principal: Principal = Depends(require(Permission.MODEL_WRITE)),
) -> dict[str, Any]:
    fields = body.model_dump()
    model = await run_in_threadpool(
        runtime_of(request).models.create, actor=actor_of(request), **fields
    )
    return model.to_dict()


@router.get("")
async def list_models(
    request: Request,
    name: str | None = None,
    tag: str | None = None,
    owner: str | None = None,
    status: str | None = None,
    _: Principal = Depends(require(Permission.MODEL_READ)),
) -> dict[str, Any]:
    found = await run_in_threadpool(
        runtime_of(request).models.list, name=name, tag=tag, owner=owner, status=status
    )
    return {"models": [m.to_dict() for m in found]}


@router.get("/{name}", responses=errors(404))
async def show_model(
    name: str, request: Request, _: Principal = Depends(require(Permission.MODEL_READ))
) -> dict[str, Any]:
    runtime = runtime_of(request)
    model = await run_in_threadpool(runtime.models.get, name)
    versions = await run_in_threadpool(runtime.versions.list, name)
    return {**model.to_dict(), "versions": [v.to_dict() for v in versions]}


@router.patch("/{name}", responses=errors(400, 404, 409))
async def update_model(
    name: str,
    body: ModelUpdate,
    request: Request,
    principal: Principal = Depends(require(Permission.MODEL_WRITE)),
) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    model = await run_in_threadpool(
        runtime_of(request).models.update, name, actor=actor_of(request), **fields
    )
    return model.to_dict()


@router.post("/{name}/retire", responses=errors(404, 409))
async def retire_model(
    name: str, request: Request, principal: Principal = Depends(require(Permission.MODEL_WRITE))
) -> dict[str, Any]:
    model = await run_in_threadpool(
        runtime_of(request).models.retire, name, actor=actor_of(request)
    )
    return model.to_dict()
