"""/api/v1/endpoints: deploy versions to named endpoints, list and show them, set their
serving limits."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import MAX_INT32, PROTECTED, errors
from slipway.serving.limits import LIMIT_NAMES, RANGES, EndpointLimits

router = APIRouter(prefix="/api/v1/endpoints", tags=["endpoints"], responses=PROTECTED)


def _limit(name: str, description: str) -> Any:
    """A serving limit's field: optional, null clears the endpoint's override, bounded as
    the server's setting of the same name is."""
    allowed = RANGES[name]
    return Field(
        default=None,
        gt=allowed.low if allowed.low_open else None,
        ge=None if allowed.low_open else allowed.low,
        le=allowed.high,
        allow_inf_nan=None if allowed.integer else False,
        description=description,
    )


class Limits(BaseModel):
    """Serving limits of one endpoint; a field left out keeps its value, null clears the
    override (the server's setting applies)."""

    model_config = ConfigDict(extra="forbid")
    max_inflight: int | None = _limit("max_inflight", "Requests run at once per worker.")
    max_queue: int | None = _limit("max_queue", "Requests waiting per worker; beyond: 503.")
    request_timeout_s: float | None = _limit(
        "request_timeout_s", "Not started this long after arrival: 504."
    )
    batch_max_rows: int | None = _limit(
        "batch_max_rows", "Most rows merged into one model call; 0: no micro-batching."
    )
    batch_wait_ms: float | None = _limit(
        "batch_wait_ms", "Longest wait for more requests when the model is idle."
    )

    def given(self) -> dict[str, Any]:
        """The limits the body names (null included: it clears)."""
        return {name: getattr(self, name) for name in LIMIT_NAMES if name in self.model_fields_set}


class SetLimits(Limits):
    reason: str = Field(default="", max_length=2000)


class Deploy(Limits):
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
    if "limits" in data:  # the overrides over this server's settings
        own = EndpointLimits(**data["limits"])
        data["effective_limits"] = own.over(runtime_of(request).inference.defaults).to_dict()
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
        limits=body.given(),
    )
    return _with_status(request, endpoint.to_dict())


@router.put("/{name}/limits", responses=errors(400, 404))
async def set_limits(
    name: str,
    body: SetLimits,
    request: Request,
    principal: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Override the server's serving limits on this endpoint (every worker applies them
    after its next sync); null clears an override."""
    endpoint = await run_in_threadpool(
        runtime_of(request).endpoints.set_limits,
        name,
        actor=actor_of(request),
        reason=body.reason,
        **body.given(),
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
