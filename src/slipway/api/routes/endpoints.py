"""/api/v1/endpoints: deploy versions to named endpoints, list and show them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import MAX_INT32, PROTECTED, errors

router = APIRouter(prefix="/api/v1/endpoints", tags=["endpoints"], responses=PROTECTED)


class Deploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1, le=MAX_INT32)
    contract_mode: Literal["reject", "partial"] | None = None
    allow_breaking: bool = False
    reason: str = Field(default="", max_length=2000)
    latency_slo_ms: float | None = Field(default=None, gt=0, le=600_000)


def _with_status(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    pool = runtime_of(request).pool
    broken = pool.broken.get(data["name"])
    try:
        serving = pool.get(data["name"]).version.number
    except Exception:  # noqa: BLE001 - not loaded in this process
        serving = None
    data["serving_version"] = serving
    data["load_error"] = broken[1] if broken else None
    return data


@router.post("/{name}/deploy", responses=errors(400, 404, 409, 503))
async def deploy(
    name: str,
    body: Deploy,
    request: Request,
    principal: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    endpoint = await run_in_threadpool(
        runtime_of(request).endpoints.deploy,
        name,
        model=body.model,
        version=body.version,
        actor=actor_of(request),
        contract_mode=body.contract_mode,
        allow_breaking=body.allow_breaking,
        reason=body.reason,
        latency_slo_ms=body.latency_slo_ms,
    )
    return _with_status(request, endpoint.to_dict())


@router.get("")
async def list_endpoints(
    request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    found = await run_in_threadpool(runtime_of(request).endpoints.list)
    return {"endpoints": [_with_status(request, e.to_dict()) for e in found]}


@router.get("/{name}", responses=errors(404))
async def show_endpoint(
    name: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    endpoint = await run_in_threadpool(runtime_of(request).endpoints.get, name)
    return _with_status(request, endpoint.to_dict())
