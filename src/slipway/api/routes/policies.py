"""/api/v1/policies: policies as code (YAML), and the dry run of a deploy against them.

The path parameter is ``policy``, not ``name``: authorization reads ``name`` as the model
or endpoint a grant is scoped to, and a policy is neither.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from slipway.access.authz import Permission, Principal
from slipway.api.auth import actor_of, authorize_target, require, runtime_of
from slipway.api.routes import MAX_INT32, PROTECTED, errors
from slipway.governance.policy_spec import MAX_SOURCE_BYTES

router = APIRouter(prefix="/api/v1/policies", tags=["policies"], responses=PROTECTED)


class PolicySource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=MAX_SOURCE_BYTES, description="The YAML.")


class PolicyCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1, le=MAX_INT32)
    endpoint: str = Field(min_length=1, max_length=64)
    action: Literal["deploy", "rollout_start", "promote"] = "deploy"


@router.get("")
async def list_policies(
    request: Request, _: Principal = Depends(require(Permission.POLICY_READ))
) -> dict[str, Any]:
    found = await run_in_threadpool(runtime_of(request).policies.list)
    return {"policies": [p.to_dict() for p in found]}


@router.post("/check", responses=errors(400, 404))
async def check_policies(
    body: PolicyCheck,
    request: Request,
    principal: Principal = Depends(require(Permission.POLICY_READ)),
) -> dict[str, Any]:
    """The dry run: every check of every policy that ``action`` of the version on the
    endpoint would meet, with its reason; ``allowed`` false means it would be blocked.
    Changes nothing."""
    # The report shows the version's evaluation and approvals: the model must be readable.
    await authorize_target(request, principal, Permission.MODEL_READ, body.model)
    report = await run_in_threadpool(
        runtime_of(request).policies.evaluate,
        body.model,
        body.version,
        endpoint=body.endpoint,
        action=body.action,
    )
    return report.to_dict()


@router.get("/{policy}", responses=errors(404))
async def get_policy(
    policy: str, request: Request, _: Principal = Depends(require(Permission.POLICY_READ))
) -> dict[str, Any]:
    found = await run_in_threadpool(runtime_of(request).policies.get, policy)
    return found.to_dict()


@router.put("/{policy}", responses=errors(400, 409))
async def put_policy(
    policy: str,
    body: PolicySource,
    request: Request,
    _: Principal = Depends(require(Permission.POLICY_MANAGE)),
) -> dict[str, Any]:
    """Create the policy or replace it (its revision goes up by one); audited with the
    source before and after."""
    saved = await run_in_threadpool(
        runtime_of(request).policies.put, policy, body.source, actor=actor_of(request)
    )
    return saved.to_dict()


@router.delete("/{policy}", responses=errors(404))
async def delete_policy(
    policy: str, request: Request, _: Principal = Depends(require(Permission.POLICY_MANAGE))
) -> dict[str, Any]:
    await run_in_threadpool(runtime_of(request).policies.delete, policy, actor=actor_of(request))
    return {"deleted": policy}
