"""Monitoring: an endpoint's health summary, delayed labels, monitors, alerts, channels."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, authorize_target, require, runtime_of
from slipway.api.routes import MAX_INT32, PROTECTED, errors
from slipway.monitoring.feedback import MAX_ITEMS

router = APIRouter(prefix="/api/v1", tags=["monitoring"], responses=PROTECTED)

_WINDOW = Query(default=86400, ge=60, le=90 * 86400, description="seconds back from now")


class Feedback(BaseModel):
    """``items``: ``[{"prediction_id": ..., "label": ...}]``. Items are checked one by
    one by the service, so one bad item is reported without refusing the others."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1, max_length=MAX_ITEMS)


class MonitorFields(BaseModel):
    """Fields of a monitor; the service validates them and names the bad one."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=128)
    metric: str | None = Field(default=None, max_length=32)
    feature: str | None = Field(default=None, max_length=128)
    window_s: int | None = None
    op: str | None = Field(default=None, max_length=2)
    threshold: float | None = None
    min_samples: int | None = None
    severity: str | None = Field(default=None, max_length=16)
    enabled: bool | None = None


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=128)
    kind: str = Field(max_length=16)
    url: str = Field(default="", max_length=2048)
    secret_ref: str = Field(default="", max_length=512)
    endpoints: list[str] = Field(default_factory=list, max_length=1000)
    min_severity: str = Field(default="info", max_length=16)


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


# -- health of one endpoint --------------------------------------------------------------


@router.get("/endpoints/{endpoint}/monitoring", responses=errors(404))
async def summary(
    endpoint: str,
    request: Request,
    window: int = _WINDOW,
    version: int | None = Query(default=None, ge=1, le=MAX_INT32),
    _: Principal = Depends(require(Permission.MONITOR_READ)),
) -> dict[str, Any]:
    """Traffic, latency, drift, distributions, label quality, monitors and firing alerts
    of the endpoint's primary version (or ``version``) over the last ``window`` seconds."""
    rt = runtime_of(request)
    await run_in_threadpool(rt.windows.flush, rt.engine, everything=True)
    return await run_in_threadpool(rt.summaries.summarize, endpoint, window, version=version)


@router.post("/endpoints/{endpoint}/feedback", responses=errors(400, 404))
async def submit_feedback(
    endpoint: str,
    body: Feedback,
    request: Request,
    _: Principal = Depends(require(Permission.FEEDBACK_WRITE)),
) -> dict[str, Any]:
    """Ground truth for prediction ids of this endpoint (up to 10,000 per call). Every id
    is reported: accepted, updated (a new label for a known id), overridden (a reviewer
    overrode it: the correction stands), unknown or invalid."""
    rt = runtime_of(request)
    await run_in_threadpool(rt.endpoints.get, endpoint)
    return await run_in_threadpool(
        rt.feedback.submit, endpoint, body.items, actor=actor_of(request)
    )


# -- monitors ----------------------------------------------------------------------------


@router.get("/endpoints/{endpoint}/monitors", responses=errors(404))
async def list_monitors(
    endpoint: str, request: Request, _: Principal = Depends(require(Permission.MONITOR_READ))
) -> dict[str, Any]:
    rt = runtime_of(request)
    await run_in_threadpool(rt.endpoints.get, endpoint)
    monitors = await run_in_threadpool(rt.monitors.list, endpoint)
    return {"monitors": [m.to_dict() for m in monitors]}


@router.post("/endpoints/{endpoint}/monitors", status_code=201, responses=errors(400, 404, 409))
async def create_monitor(
    endpoint: str,
    body: MonitorFields,
    request: Request,
    _: Principal = Depends(require(Permission.MONITOR_WRITE)),
) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    monitor = await run_in_threadpool(
        runtime_of(request).monitors.create, endpoint, fields, actor=actor_of(request)
    )
    return monitor.to_dict()


@router.patch("/endpoints/{endpoint}/monitors/{monitor}", responses=errors(400, 404, 409))
async def update_monitor(
    endpoint: str,
    monitor: str,
    body: MonitorFields,
    request: Request,
    _: Principal = Depends(require(Permission.MONITOR_WRITE)),
) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    updated = await run_in_threadpool(
        runtime_of(request).monitors.update, endpoint, monitor, fields, actor=actor_of(request)
    )
    return updated.to_dict()


@router.delete("/endpoints/{endpoint}/monitors/{monitor}", responses=errors(404))
async def delete_monitor(
    endpoint: str,
    monitor: str,
    request: Request,
    _: Principal = Depends(require(Permission.MONITOR_WRITE)),
) -> dict[str, Any]:
    await run_in_threadpool(
        runtime_of(request).monitors.delete, endpoint, monitor, actor=actor_of(request)
    )
    return {"deleted": monitor}


@router.post("/endpoints/{endpoint}/monitors/evaluate", responses=errors(404))
async def evaluate_monitors(
    endpoint: str, request: Request, _: Principal = Depends(require(Permission.MONITOR_WRITE))
) -> dict[str, Any]:
    """Judge the endpoint's monitors now (the controller does it every
    ``monitor_interval_s``): alerts fire or resolve and due notifications are sent."""
    rt = runtime_of(request)
    await run_in_threadpool(rt.endpoints.get, endpoint)
    result = await run_in_threadpool(rt.check_monitors, endpoint)
    return {
        "evaluations": [e.verdict() for e in result["evaluations"]],
        "changes": result["changes"],
        "delivered": result["delivered"],
    }


# -- alerts ------------------------------------------------------------------------------


@router.get("/alerts")
async def list_alerts(
    request: Request,
    endpoint: str | None = Query(default=None, max_length=128),
    state: Literal["firing", "resolved"] | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require(Permission.MONITOR_READ)),
) -> dict[str, Any]:
    """Alerts, newest first; only those of endpoints the caller may read."""
    rt = runtime_of(request)
    alerts = await run_in_threadpool(rt.alerts.list, endpoint=endpoint, state=state, limit=limit)
    visible = [a for a in alerts if principal.can(Permission.MONITOR_READ, a.endpoint)]
    return {"alerts": [a.to_dict() for a in visible]}


@router.get("/alerts/{alert_id}", responses=errors(404))
async def show_alert(
    alert_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.MONITOR_READ)),
) -> dict[str, Any]:
    alert = await run_in_threadpool(runtime_of(request).alerts.get, alert_id)
    await authorize_target(request, principal, Permission.MONITOR_READ, alert.endpoint)
    return alert.to_dict()


@router.post("/alerts/{alert_id}/resolve", responses=errors(400, 404, 409))
async def resolve_alert(
    alert_id: str,
    body: Resolve,
    request: Request,
    principal: Principal = Depends(require(Permission.MONITOR_WRITE)),
) -> dict[str, Any]:
    rt = runtime_of(request)
    alert = await run_in_threadpool(rt.alerts.get, alert_id)
    await authorize_target(request, principal, Permission.MONITOR_WRITE, alert.endpoint)
    resolved = await run_in_threadpool(
        rt.alerts.resolve, alert_id, actor=actor_of(request), reason=body.reason
    )
    return resolved.to_dict()


# -- notification channels ---------------------------------------------------------------


@router.get("/channels")
async def list_channels(
    request: Request, _: Principal = Depends(require(Permission.CHANNEL_MANAGE))
) -> dict[str, Any]:
    channels = await run_in_threadpool(runtime_of(request).channels.list)
    return {"channels": [c.to_dict() for c in channels]}


@router.post("/channels", status_code=201, responses=errors(400, 409))
async def create_channel(
    body: ChannelCreate,
    request: Request,
    _: Principal = Depends(require(Permission.CHANNEL_MANAGE)),
) -> dict[str, Any]:
    channel = await run_in_threadpool(
        runtime_of(request).channels.create,
        body.name,
        body.kind,
        url=body.url,
        secret_ref=body.secret_ref,
        endpoints=tuple(body.endpoints),
        min_severity=body.min_severity,
        actor=actor_of(request),
    )
    return channel.to_dict()


@router.delete("/channels/{channel}", responses=errors(404))
async def delete_channel(
    channel: str, request: Request, _: Principal = Depends(require(Permission.CHANNEL_MANAGE))
) -> dict[str, Any]:
    await run_in_threadpool(runtime_of(request).channels.delete, channel, actor_of(request))
    return {"deleted": channel}


@router.post("/channels/{channel}/test", responses=errors(404))
async def test_channel(
    channel: str, request: Request, _: Principal = Depends(require(Permission.CHANNEL_MANAGE))
) -> dict[str, Any]:
    """Send a sample alert through the channel and say what came back."""
    result = await run_in_threadpool(runtime_of(request).channels.test, channel)
    return {"ok": result.ok, "status": result.status, "error": result.error}
