"""Controlled rollout: an endpoint's traffic plan, its stop switch, staged rollouts with
canary analysis, shadow reports, and the analysis templates rollouts are judged by."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, require, runtime_of
from slipway.api.routes import MAX_INT32, MAX_SECONDS, PROTECTED, errors
from slipway.api.routes.endpoints import _with_status
from slipway.api.routes.monitoring import _WINDOW
from slipway.ids import utcnow
from slipway.rollout.shadow import shadow_report

router = APIRouter(prefix="/api/v1", tags=["rollout"], responses=PROTECTED)

MAX_SHADOWS = 5
MAX_STEPS = 20
_VERSION = Field(ge=1, le=MAX_INT32)
_REASON = Field(default="", max_length=2000)
_SPEC = Body(description="The template's checks and fields that differ from ``default``.")
Routing = Literal["random", "sticky"]
RolloutState = Literal["pending", "running", "paused", "promoted", "rolled_back", "aborted"]


class Traffic(BaseModel):
    """The whole plan: what is left out is cleared (no canary, no shadows)."""

    model_config = ConfigDict(extra="forbid")
    canary: int | None = Field(default=None, ge=1, le=MAX_INT32)
    weight: float = Field(default=0.0, ge=0, le=100, allow_inf_nan=False)
    routing: Routing = "random"
    shadows: list[Annotated[int, _VERSION]] = Field(default_factory=list, max_length=MAX_SHADOWS)
    reason: str = _REASON


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = _REASON


class Stop(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    fallback_version: int | None = Field(default=None, ge=1, le=MAX_INT32)


class RolloutStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = _VERSION
    steps: list[float] = Field(default=[5, 25, 50, 100], min_length=1, max_length=MAX_STEPS)
    step_duration_s: float = Field(default=300.0, gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    template: str = Field(default="default", min_length=1, max_length=64)
    thresholds: dict[str, Any] | None = None
    routing: Routing = "random"
    allow_breaking: bool = False
    reason: str = _REASON


def _reason(body: Reason | None) -> str:
    return body.reason if body is not None else ""


# -- traffic plan and stop switch --------------------------------------------------------


@router.put("/endpoints/{name}/traffic", responses=errors(400, 404, 409, 503))
async def set_traffic(
    name: str,
    body: Traffic,
    request: Request,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Set the endpoint's canary (with its weight in percent and routing) and shadows;
    the primary stays. Versions are loaded before the plan changes."""
    endpoint = await run_in_threadpool(
        runtime_of(request).plans.set_traffic,
        name,
        canary=body.canary,
        weight=body.weight,
        routing=body.routing,
        shadows=body.shadows,
        actor=actor_of(request),
        reason=body.reason,
    )
    return _with_status(request, endpoint.to_dict())


@router.post("/endpoints/{name}/rollback", responses=errors(400, 404, 409, 503))
async def rollback(
    name: str,
    request: Request,
    body: Reason | None = None,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Serve the previous primary again; a rollout under way ends as rolled back."""
    endpoint = await run_in_threadpool(
        runtime_of(request).plans.rollback, name, actor=actor_of(request), reason=_reason(body)
    )
    return _with_status(request, endpoint.to_dict())


@router.post("/endpoints/{name}/stop", responses=errors(400, 404, 409, 503))
async def stop(
    name: str,
    body: Stop,
    request: Request,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Stop answering: predictions get 503 ``endpoint_stopped``, or the answer of
    ``fallback_version`` when one is given."""
    endpoint = await run_in_threadpool(
        runtime_of(request).plans.stop,
        name,
        actor=actor_of(request),
        reason=body.reason,
        fallback=body.fallback_version,
    )
    return _with_status(request, endpoint.to_dict())


@router.post("/endpoints/{name}/resume", responses=errors(400, 404, 409, 503))
async def resume(
    name: str,
    request: Request,
    body: Reason | None = None,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Answer again with the traffic plan as it was before the stop."""
    endpoint = await run_in_threadpool(
        runtime_of(request).plans.resume, name, actor=actor_of(request), reason=_reason(body)
    )
    return _with_status(request, endpoint.to_dict())


@router.get("/endpoints/{name}/shadow-report", responses=errors(404))
async def get_shadow_report(
    name: str,
    request: Request,
    window: int = _WINDOW,
    _: Principal = Depends(require(Permission.MONITOR_READ)),
) -> dict[str, Any]:
    """Each shadow beside the primary over the last ``window`` seconds: traffic, errors,
    latency, agreement with what callers got, and how far its predictions moved."""
    rt = runtime_of(request)
    endpoint = await run_in_threadpool(rt.endpoints.get, name)
    await run_in_threadpool(rt.windows.flush, rt.engine, everything=True)
    end = utcnow()
    start = end - timedelta(seconds=window)
    return await run_in_threadpool(shadow_report, rt.window_store, endpoint, start, end)


# -- rollouts ----------------------------------------------------------------------------


@router.post("/endpoints/{name}/rollout", status_code=201, responses=errors(400, 404, 409, 503))
async def start_rollout(
    name: str,
    body: RolloutStart,
    request: Request,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Move the endpoint to ``version`` step by step (canary weights ``steps``), judging
    the canary against the primary at each step; it promotes or rolls back by itself."""
    rollout = await run_in_threadpool(
        runtime_of(request).rollouts.start,
        name,
        version=body.version,
        actor=actor_of(request),
        steps=body.steps,
        step_duration_s=body.step_duration_s,
        template=body.template,
        thresholds=body.thresholds,
        routing=body.routing,
        allow_breaking=body.allow_breaking,
        reason=body.reason,
    )
    return rollout.to_dict()


@router.get("/endpoints/{name}/rollout", responses=errors(404))
async def latest_rollout(
    name: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    """The endpoint's rollout under way, or else its last one."""
    rollout = await run_in_threadpool(runtime_of(request).rollouts.latest, name)
    return rollout.to_dict()


@router.get("/endpoints/{name}/rollouts", responses=errors(404))
async def list_rollouts(
    name: str,
    request: Request,
    state: RolloutState | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    _: Principal = Depends(require(Permission.ENDPOINT_READ)),
) -> dict[str, Any]:
    """The endpoint's rollouts, newest first."""
    rt = runtime_of(request)
    await run_in_threadpool(rt.endpoints.get, name)
    found = await run_in_threadpool(rt.rollouts.list, name, state=state, limit=limit)
    return {"rollouts": [r.to_dict() for r in found]}


@router.get("/rollouts")
async def list_all_rollouts(
    request: Request,
    state: RolloutState | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require(Permission.ENDPOINT_READ)),
) -> dict[str, Any]:
    """Rollouts of every endpoint, newest first; only those of endpoints the caller may
    read."""
    found = await run_in_threadpool(
        runtime_of(request).rollouts.list, None, state=state, limit=limit
    )
    visible = [r for r in found if principal.can(Permission.ENDPOINT_READ, r.endpoint)]
    return {"rollouts": [r.to_dict() for r in visible]}


@router.get("/endpoints/{name}/rollout/analysis", responses=errors(404))
async def rollout_analysis(
    name: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    """The canary against the primary now, over the current step's window (not recorded:
    the controller judges on its own schedule)."""
    rt = runtime_of(request)
    await run_in_threadpool(rt.windows.flush, rt.engine, endpoints=(name,))
    analysis: dict[str, Any] = await run_in_threadpool(rt.rollouts.analysis, name)
    return analysis


async def _act(
    request: Request, action: Callable[..., Any], name: str, body: Reason | None
) -> dict[str, Any]:
    """Run a rollout ``action`` (pause, resume...) on the endpoint's rollout under way."""
    rollout = await run_in_threadpool(action, name, actor=actor_of(request), reason=_reason(body))
    result: dict[str, Any] = rollout.to_dict()
    return result


@router.post("/endpoints/{name}/rollout/pause", responses=errors(400, 404, 409))
async def pause_rollout(
    name: str,
    request: Request,
    body: Reason | None = None,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Hold the rollout at its current step: no analysis decides until it resumes."""
    return await _act(request, runtime_of(request).rollouts.pause, name, body)


@router.post("/endpoints/{name}/rollout/resume", responses=errors(400, 404, 409, 503))
async def resume_rollout(
    name: str,
    request: Request,
    body: Reason | None = None,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Go on from the step the rollout was paused at."""
    return await _act(request, runtime_of(request).rollouts.resume, name, body)


@router.post("/endpoints/{name}/rollout/promote", responses=errors(400, 404, 409, 503))
async def promote_rollout(
    name: str,
    request: Request,
    body: Reason | None = None,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Make the canary the primary now, skipping the remaining steps."""
    return await _act(request, runtime_of(request).rollouts.promote, name, body)


@router.post("/endpoints/{name}/rollout/abort", responses=errors(400, 404, 409, 503))
async def abort_rollout(
    name: str,
    request: Request,
    body: Reason | None = None,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Stop the rollout and send all traffic back to the primary."""
    return await _act(request, runtime_of(request).rollouts.abort, name, body)


# -- analysis templates ------------------------------------------------------------------
# The path parameter is ``template``: ``name`` and ``endpoint`` are read by authorization
# as the endpoint a grant is scoped to, and a template is no endpoint.


@router.get("/analysis-templates")
async def list_templates(
    request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    """``default`` (built in, read-only) first, then the stored templates by name."""
    found = await run_in_threadpool(runtime_of(request).templates.list)
    return {"templates": [t.to_dict() for t in found]}


@router.get("/analysis-templates/{template}", responses=errors(404))
async def get_template(
    template: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_READ))
) -> dict[str, Any]:
    found = await run_in_threadpool(runtime_of(request).templates.get, template)
    return found.to_dict()


@router.put("/analysis-templates/{template}", responses=errors(400, 409))
async def put_template(
    template: str,
    request: Request,
    spec: dict[str, Any] = _SPEC,
    _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY)),
) -> dict[str, Any]:
    """Create or replace a template; the checks and fields it leaves out come from
    ``default``. Rollouts under way keep the copy they started with."""
    saved = await run_in_threadpool(
        runtime_of(request).templates.put, template, spec, actor_of(request)
    )
    return saved.to_dict()


@router.delete("/analysis-templates/{template}", responses=errors(404, 409))
async def delete_template(
    template: str, request: Request, _: Principal = Depends(require(Permission.ENDPOINT_DEPLOY))
) -> dict[str, Any]:
    await run_in_threadpool(runtime_of(request).templates.delete, template, actor_of(request))
    return {"deleted": template}
